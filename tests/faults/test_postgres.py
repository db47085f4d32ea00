"""PostgreSQL under faults, on a throwaway server: immediate-mode crash and restart under load,
`pg_terminate_backend` loops, and a fault proxy (latency, RST, blackhole) between the workers and
the server. No worker or queue is restarted; each scenario ends with heal, drain and the checker."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults import report
from tests.faults.harness import FaultRun, call_seconds, start_workers
from tests.faults.servers import pg_schema_url, pg_server, proxied
from tests.support.faultproxy import FaultProxy
from workclaim.bench.history import load_history

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]
__all__ = ["pg_server"]

TIMEOUT = 1.0  # Settings.timeout of the workers: the deadline of one store call


def _assert_clean(outcome: Any) -> None:
    assert outcome.violations == 0, outcome.describe()


@pytest.mark.parametrize("crashes", [2, pytest.param(8, marks=pytest.mark.soak)])
def test_crash_restart_under_load(
    pg_server: Any, tmp_path: Path, runs: list[FaultRun], crashes: int
) -> None:
    url = pg_schema_url(pg_server.url)
    run = FaultRun(f"postgres: crash (immediate) x{crashes}", url, tmp_path, timeout=TIMEOUT)
    runs.append(run)
    run.enqueue(300 * crashes)
    workers = start_workers(run, "p", 4)
    for _ in range(crashes):
        time.sleep(1.0)  # let work flow before the next crash
        pg_server.crash()
        run.faults += 1
        time.sleep(0.5)  # the outage
        pg_server.start()
    heal = time.monotonic_ns()
    assert run.wait_until_finished(120)
    assert all(w.is_alive() for w in workers), "a worker died instead of riding out the restart"
    outcome = run.finish(recovery_from_ns=heal)
    _assert_clean(outcome)


def _terminate_loop(server: Any, stop: threading.Event, every: float) -> int:
    import psycopg

    killed = 0
    while not stop.wait(every):
        try:
            with psycopg.connect(server.url, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'workclaim' AND pid <> pg_backend_pid()"
                ).fetchone()
                killed += int(row[0]) if row else 0
        except psycopg.Error:
            continue
    return killed


@pytest.mark.parametrize("seconds", [3.0, pytest.param(30.0, marks=pytest.mark.soak)])
def test_terminate_backend_loop(
    pg_server: Any, tmp_path: Path, runs: list[FaultRun], seconds: float
) -> None:
    url = pg_schema_url(pg_server.url)
    run = FaultRun(f"postgres: pg_terminate_backend {seconds:g}s", url, tmp_path, timeout=TIMEOUT)
    runs.append(run)
    run.enqueue(int(150 * seconds))
    workers = start_workers(run, "p", 4)
    stop = threading.Event()
    result: list[int] = []
    killer = threading.Thread(
        target=lambda: result.append(_terminate_loop(pg_server, stop, 0.2)), daemon=True
    )
    killer.start()
    time.sleep(seconds)  # the fault's duration
    stop.set()
    killer.join(30)
    heal = time.monotonic_ns()
    run.faults += result[0] if result else 0
    assert run.wait_until_finished(120)
    assert all(w.is_alive() for w in workers), "a worker died instead of reconnecting"
    outcome = run.finish(recovery_from_ns=heal)
    _assert_clean(outcome)


def _proxy_schedule(proxy: FaultProxy, run: FaultRun, blackhole: float) -> None:
    steps: list[tuple[str, float]] = [
        ("pass", 0.5),
        ("latency:100", 1.0),
        ("latency:300", 1.0),
        ("reset", 0.3),
        ("reset", 0.3),
        ("reset", 0.3),
        ("blackhole", blackhole),
        ("refuse", 0.5),
    ]
    for mode, seconds in steps:
        if mode == "reset":
            proxy.set_mode("pass")
            proxy.reset_all()
        else:
            proxy.set_mode(mode)
        if mode != "pass":
            run.faults += 1
        time.sleep(seconds)  # how long this fault lasts
    proxy.set_mode("pass")


# The CI blackhole outlasts the deadline bound, so a call without a client-side deadline shows.
@pytest.mark.parametrize("blackhole", [8.0, pytest.param(15.0, marks=pytest.mark.soak)])
def test_network_faults_respect_deadlines(
    pg_server: Any, tmp_path: Path, runs: list[FaultRun], blackhole: float
) -> None:
    url = pg_schema_url(pg_server.url)
    run = FaultRun(
        f"postgres: proxy latency/RST/blackhole ({blackhole:g}s blackhole)",
        url,
        tmp_path,
        timeout=TIMEOUT,
    )
    runs.append(run)
    run.enqueue(400)
    with FaultProxy("127.0.0.1", pg_server.port) as proxy:
        workers = start_workers(run, "p", 3, url=proxied(url, proxy.port))
        _proxy_schedule(proxy, run, blackhole)
        heal = time.monotonic_ns()
        assert run.wait_until_finished(120)
        assert all(w.is_alive() for w in workers)
        outcome = run.finish(recovery_from_ns=heal)
    _assert_clean(outcome)
    events = load_history(run.dir.glob("p*.jsonl"))
    slowest = max(call_seconds(events, kinds=("claim", "heartbeat", "complete", "release", "fail")))
    report.ROWS[-1]["slowest_call_s"] = round(slowest, 3)
    # claim waits up to idle_wait; a call may take one pool checkout, a connect and a retry.
    bound = 0.2 + 4 * TIMEOUT + 2.0
    # A call hung on the network is ended by the backend's client-side watchdog
    # (backends/postgres/deadline.py): statement_timeout is the server's and tcp_user_timeout
    # never fires while the proxy keeps acknowledging.
    assert slowest <= bound, f"PostgreSQL call hung {slowest:.1f}s (bound {bound:.1f}s)"
