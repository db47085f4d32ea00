"""Clock steps (libfaketime) under load. SQLite's clock is its host's: one worker's clock, or
every worker's, is stepped back and forward by minutes while others run. PostgreSQL, Redis and
MariaDB use their server's clock: workers whose clocks are hours off change nothing.

What is promised (docs/guarantees.md): a step back of one process's clock shortens no lease and
lengthens none (the SQLite store's clock never goes back, backends/sqlite/clock.py); a step
forward is the store's clock jumping: leases live then end early by up to the step, and their old
holders are fenced. Tokens stay unique and increasing either way; nothing is lost.
"""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.faults.fakeclock import FakeClock
from tests.faults.harness import FaultRun
from tests.faults.servers import (
    durable_redis,
    mariadb_server,
    pg_schema_url,
    pg_server,
    redis_prefixed,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]
__all__ = ["durable_redis", "mariadb_server", "pg_server"]

STEP = 300.0  # five minutes
SKEW = 3 * 3600.0  # three hours
ITEMS = 50
PHASE = 1.0  # seconds of work between two steps


def _clock(tmp_path: Path, name: str, seconds: float = 0.0) -> FakeClock:
    """A clock file at `seconds`, after proving that a process under it sees an offset."""
    clock = FakeClock(tmp_path / f"{name}.faketime")
    clock.step(-60)
    seen = clock.offset()
    assert abs(seen + 60) < 5, f"the clock shim is not in effect: offset {seen:.1f}s"
    clock.step(seconds)
    return clock


def _spawn(run: FaultRun, clock: FakeClock | None, names: list[str], job: float = 0.2) -> list[Any]:
    """Workers doing `job`-second jobs on 1 s leases, heartbeating every 50 ms (a heartbeat under
    a clock stepped back would end its own lease early for everyone else), under `clock`."""
    configs = [run.config(n, job_seconds=job, heartbeat_every=0.05) for n in names]
    if clock is None:
        return [run.spawn(c) for c in configs]
    with clock.applied():
        return [run.spawn(c) for c in configs]


def _slack(who: str, steps: list[float]) -> float:
    """How far the store's clock may jump ahead of real time: none unless a clock goes ahead of
    true time, or (every worker stepped) comes back to it after a step back, when every writer's
    clock was behind the mark and held it still; then up to the step plus the time held, so a
    lease live at the jump may end that much early (judged on real time). One worker coming back
    from a step back jumps nothing: the others kept the mark at true time."""
    ahead = max(steps) > 0
    if who == "all workers":
        ahead = ahead or any(b > a for a, b in pairwise([0.0, *steps]))
    return STEP + PHASE * len(steps) + 1.0 if ahead else 0.0


def _steps(run: FaultRun, clock: FakeClock, steps: list[float]) -> None:
    """Apply each offset in turn, with work flowing for a second before each."""
    for seconds in steps:
        time.sleep(PHASE)  # let work flow under the current clock before the step
        clock.step(seconds)
        run.faults += 1


@pytest.mark.parametrize(
    ("who", "steps"),
    [
        ("one worker", [-STEP, 0.0]),
        ("one worker", [STEP, 0.0]),
        ("all workers", [-STEP]),
        pytest.param("all workers", [STEP, -STEP, 0.0], marks=pytest.mark.soak),
        pytest.param("one worker", [STEP, -STEP, STEP, 0.0], marks=pytest.mark.soak),
    ],
)
def test_sqlite_clock_step(
    who: str, steps: list[float], tmp_path: Path, runs: list[FaultRun]
) -> None:
    shown = ", ".join(f"{s:+.0f}s" for s in steps)
    run = FaultRun(f"sqlite: clock step {shown}, {who}", f"sqlite:///{tmp_path / 'q.db'}", tmp_path)
    runs.append(run)
    run.enqueue(ITEMS)
    clock = _clock(tmp_path, "step")
    if who == "one worker":
        # The stepped worker's jobs outlast each phase: every step lands while it holds a lease.
        workers = _spawn(run, clock, ["stepped"], job=3 * PHASE)
        workers += _spawn(run, None, ["a", "b", "c"])
    else:
        workers = _spawn(run, clock, ["s0", "s1", "s2", "s3"])
    run.wait_ready(workers)
    _steps(run, clock, steps)
    heal = time.monotonic_ns()
    run.enqueue(ITEMS)  # work after the last step, on the store's (possibly held) clock
    assert run.wait_until_finished(120)
    outcome = run.finish(recovery_from_ns=heal, clock_slack_ns=round(_slack(who, steps) * 1e9))
    assert outcome.violations == 0, outcome.describe()
    assert outcome.items == 2 * ITEMS
    assert all(w.exitcode == 0 for w in workers), [w.exitcode for w in workers]


@pytest.mark.parametrize("backend", ["postgres", "redis", "mariadb"])
def test_client_clock_skew_changes_nothing(
    backend: str, tmp_path: Path, runs: list[FaultRun], request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        url = pg_schema_url(request.getfixturevalue("pg_server").url)
    elif backend == "mariadb":
        url = request.getfixturevalue("mariadb_server").database_url()
    else:
        url = redis_prefixed(request.getfixturevalue("durable_redis").url)
    run = FaultRun(f"{backend}: worker clocks +-3 h", url, tmp_path)
    runs.append(run)
    run.enqueue(ITEMS)
    ahead, behind = _clock(tmp_path, "ahead", SKEW), _clock(tmp_path, "behind", -SKEW)
    workers = _spawn(run, ahead, ["ahead"]) + _spawn(run, behind, ["behind"])
    workers += _spawn(run, None, ["true"])
    run.wait_ready(workers)
    time.sleep(1.0)  # work flows with the clocks hours apart
    ahead.step(-SKEW)  # and the skews swap sides mid-run
    behind.step(SKEW)
    run.faults += 2
    assert run.wait_until_finished(120)
    outcome = run.finish()  # no clock slack: the server's clock is the only one used
    assert outcome.violations == 0, outcome.describe()
    assert outcome.reclaims == 0, outcome.describe()  # no lease ended early for anybody
    assert outcome.items == ITEMS
