"""The worker runtime as people run it: `workclaim worker`, stopped by SIGTERM mid-work.

Items are in flight when the signal comes; short ones finish within the grace period and are
completed (through the fused path, claiming nothing more), long ones are released when it ends.
The store is checked afterwards: nothing lost (every item done or queued again, none left
claimed), nothing completed twice, and no claim after the signal (the item beyond the worker's
capacity stays untouched).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from workclaim import EventKind, Queue, Status
from workclaim.worker import Context

LOG_ENV = "WORKCLAIM_TEST_WORKER_LOG"


def record_and_work(ctx: Context) -> dict[str, int]:
    """The handler run by the subprocess: log the start, then 'work' for payload seconds
    (cut short when the runtime says it is stopping)."""
    with open(os.environ[LOG_ENV], "a", encoding="utf-8") as fh:
        fh.write(f"start {ctx.lease.id} {ctx.token}\n")
    ctx.stopping.wait(float(ctx.lease.payload["seconds"]))
    return {"n": ctx.lease.payload["n"]}


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen[Any], limit: float) -> None:
    """Until the log has `count` lines (the subprocess writes them); fails if it dies."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail(f"the worker did not start {count} items within {limit} s")


@pytest.mark.timeout(90)
def test_sigterm_finishes_short_work_releases_the_rest_and_exits_0(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    log = tmp_path / "starts.log"
    with Queue(db) as q:
        short = [q.enqueue("jobs", {"n": n, "seconds": 2.0}) for n in range(4)]
        long = [q.enqueue("jobs", {"n": n, "seconds": 120.0}) for n in range(4, 8)]
        spare = q.enqueue("jobs", {"n": 8, "seconds": 120.0})  # beyond the concurrency
    env = dict(os.environ, **{LOG_ENV: str(log)})
    cmd = [
        sys.executable, "-m", "workclaim", "worker",
        "tests.integration.test_worker_shutdown:record_and_work",
        "--db", db, "--queue", "jobs", "--concurrency", "8",
        "--lease-seconds", "30", "--wait", "1", "--grace", "6",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, cwd=Path(__file__).parents[2], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for_lines(log, 8, proc, 30)
        signalled = datetime.now(UTC)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    starts = log.read_text().splitlines()
    assert len(starts) == 8 and len({line.split()[1] for line in starts}) == 8
    with Queue(db) as q:
        items = {i: q.get(i) for i in short + long}
        stats = q.stats("jobs")
        histories = {i: q.history(i) for i in [*short, *long, spare]}
        assert histories[spare] == [] and q.get(spare).attempts == 0
    assert stats.claimed == 0 and stats.total == 9
    claims = [e for h in histories.values() for e in h if e.kind is EventKind.CLAIMED]
    assert len(claims) == 8 and all(e.at < signalled for e in claims)
    for i in short:
        assert items[i].status is Status.DONE and items[i].attempts == 1
        assert items[i].result == {"n": short.index(i)}
    for i in long:  # released: queued again, the attempt given back
        assert items[i].status is Status.QUEUED and items[i].attempts == 0
    assert b"4 completed, 0 failed, 4 released, 0 lost" in err
