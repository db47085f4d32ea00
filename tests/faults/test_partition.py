"""A network partition with real namespaces: workers on one side of a veth pair lose the store
(a throwaway Redis listening on the veth's host address) for longer than their leases; workers
on the store's side claim those items again; the partition heals. The checker passes, the cut-off
side's late completes are refused, and no call hangs past its deadline.

Redis stands for the network stores here: it is the one whose throwaway server can listen on the
veth's address without touching the shared servers (PostgreSQL's deadline watchdog is covered by
the TCP fault proxy in test_postgres.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import report
from tests.faults.harness import FaultRun, call_seconds
from tests.faults.netns import Partitionable
from tests.faults.servers import redis_prefixed, redis_server
from workclaim.bench.history import load_history

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

TIMEOUT = 1.0
LEASE = 1.0


@pytest.fixture
def net() -> Iterator[Partitionable]:
    made = Partitionable()
    try:
        yield made
    finally:
        made.close()


@pytest.mark.parametrize("seconds", [4.0, pytest.param(20.0, marks=pytest.mark.soak)])
def test_partition_longer_than_leases(
    net: Partitionable, tmp_path: Path, runs: list[FaultRun], seconds: float
) -> None:
    # Listening on loopback and the veth's /30 only, which nothing but the test's namespace
    # reaches; protected mode (loopback only without a password) would refuse that namespace.
    listen = {"bind": f"127.0.0.1 {net.host_ip}", "protected-mode": "no"}
    server = redis_server({"appendonly": "yes", "appendfsync": "always", **listen})
    try:
        url = redis_prefixed(server.url)
        far_url = url.replace("127.0.0.1", net.host_ip, 1)
        run = FaultRun(
            f"redis: partition {seconds:g}s (netns)", url, tmp_path, lease=LEASE, timeout=TIMEOUT
        )
        runs.append(run)
        run.enqueue(300)
        busy = {"job_seconds": 0.3, "heartbeat_every": 0.1}
        # Holders whose one job outlasts the cut (no heartbeat): once healed they try their
        # effect, heartbeat, complete, release and fail, all of which must be refused.
        hold = {"job_seconds": 1.5 + seconds, "try_all_fenced": True, "max_items": 1}
        with net.inside():
            holders = [
                run.spawn(run.config(f"hold{i}", url=far_url, **hold), events=False)
                for i in range(2)
            ]
            far = [run.spawn(run.config(f"far{i}", url=far_url, **busy)) for i in range(2)]
        near = [run.spawn(run.config(f"near{i}", **busy)) for i in range(2)]
        run.wait_ready(far + near)
        time.sleep(1.0)  # work flows on both sides
        net.cut()
        run.faults += 1
        time.sleep(seconds)  # longer than the leases: the near side takes the far side's items
        net.heal()
        heal = time.monotonic_ns()
        assert run.wait_until_finished(120)
        assert all(w.is_alive() for w in far + near)
        for holder in holders:
            holder.join(60)  # it ends after its one item
        outcome = run.finish(recovery_from_ns=heal)
    finally:
        server.close()
    assert outcome.violations == 0, outcome.describe()
    late = [
        e
        for e in load_history(run.dir.glob("hold*.jsonl"))
        if e["kind"] in ("heartbeat", "complete", "release", "fail") and e["phase"] != "invoke"
    ]
    assert sum(e["kind"] == "complete" for e in late) == len(holders), late
    assert all(e["phase"] == "fail" and "LeaseLost" in str(e["error"]) for e in late), late
    assert outcome.effects.rejected_stale >= len(holders), outcome.describe()
    assert outcome.reclaims >= len(holders), "the near side never took over the held items"
    events = load_history(run.dir.glob("far*.jsonl"))
    slowest = max(call_seconds(events, kinds=("claim", "heartbeat", "complete", "release", "fail")))
    report.ROWS[-1]["slowest_call_s"] = round(slowest, 3)
    bound = 0.2 + 4 * TIMEOUT + 2.0  # as in test_redis.py's network faults
    assert slowest <= bound, f"a call took {slowest:.2f}s, past its deadline ({bound:.1f}s)"
