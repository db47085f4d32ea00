"""The HTTP service under faults: `workclaim serve` (a real process) over a throwaway PostgreSQL,
workers using `workclaim.client.Client` through a TCP fault proxy. The database crashes (the
service must answer 503, not 500, and recover without a restart), the network misbehaves, and the
service itself is SIGKILLed and restarted. Each scenario ends with heal, drain and the checker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults import report
from tests.faults.harness import FaultRun, call_seconds
from tests.faults.servers import pg_schema_url, pg_server
from tests.support.faultproxy import FaultProxy
from tests.support.instances import Instance
from tests.support.missing import require
from workclaim.bench.history import load_history

require("workclaim.client", "the HTTP client needs the `server` extra")
pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]
__all__ = ["pg_server"]

TIMEOUT = 1.0


@pytest.fixture
def service(pg_server: Any, tmp_path: Path) -> Iterator[Instance]:
    svc = Instance(
        pg_schema_url(pg_server.url),
        tmp_path / "serve.log",
        ["--max-wait", "5"],
        {"WORKCLAIM_TIMEOUT": str(TIMEOUT)},
    )
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def _stats_status(url: str) -> int:
    import httpx

    try:
        return httpx.get(f"{url}/queues/faults/stats", timeout=5).status_code
    except httpx.HTTPError:
        return -1


@pytest.mark.parametrize("blackhole", [3.0, pytest.param(15.0, marks=pytest.mark.soak)])
def test_http_service_under_faults(
    service: Instance,
    pg_server: Any,
    tmp_path: Path,
    runs: list[FaultRun],
    blackhole: float,
) -> None:
    run = FaultRun(
        f"http: service + client under faults ({blackhole:g}s blackhole)",
        service.db,
        tmp_path,
        timeout=TIMEOUT,
    )
    runs.append(run)
    run.enqueue(500)
    with FaultProxy("127.0.0.1", service.port) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        workers = [
            run.spawn(run.config(f"h{i}", url=url, job_seconds=0.02), events=False)
            for i in range(3)
        ]
        time.sleep(1.0)  # let work flow
        # The database goes away: the service says 503 (retry later), never 500.
        pg_server.crash()
        run.faults += 1
        down = {_stats_status(service.url) for _ in range(3)}
        pg_server.start()
        assert down <= {503}, f"while PostgreSQL was down the service answered {down}"
        first_pid = service.process.pid if service.process else None
        for mode, seconds in (
            ("latency:200", 1.0),
            ("reset", 0.3),
            ("blackhole", blackhole),
            ("refuse", 0.5),
        ):
            proxy.set_mode("pass" if mode == "reset" else mode)
            if mode == "reset":
                proxy.reset_all()
            run.faults += 1
            time.sleep(seconds)  # how long this fault lasts
        proxy.set_mode("pass")
        assert service.process is not None and service.process.pid == first_pid
        # The service itself dies (claims in flight lose their replies) and comes back.
        service.kill()
        run.faults += 1
        service.start()
        heal = time.monotonic_ns()
        assert run.wait_until_finished(120)
        assert all(w.is_alive() for w in workers)
        outcome = run.finish(recovery_from_ns=heal)
    assert outcome.violations == 0, outcome.describe()
    events = load_history(run.dir.glob("h*.jsonl"))
    slowest = max(call_seconds(events, kinds=("claim", "heartbeat", "complete", "release", "fail")))
    report.ROWS[-1]["slowest_call_s"] = round(slowest, 3)
    # A claim waits up to idle_wait; an idempotent call may be retried 3 times with backoff.
    bound = 0.2 + 4 * (TIMEOUT + 2.0)
    assert slowest <= bound, f"a call took {slowest:.2f}s, past its deadline ({bound:.1f}s)"
