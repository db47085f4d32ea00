"""Worker faults on every backend: SIGKILL at named points and in a storm, a paused holder, and a
long heartbeating job. Each scenario ends with heal, drain and the history checker."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import FaultRun
from tests.faults.servers import durable_redis, fault_url, mariadb_server, pg_server
from tests.support import crashpoints

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]
__all__ = ["durable_redis", "fault_url", "mariadb_server", "pg_server"]

# A killed holder's item must be claimable again within its lease plus this much.
RECLAIM_SLACK = 3.0
# The storm's jobs: long enough that the queue outlasts the storm (300 items, 4 workers: about
# 4 s) and that a worker killed is most likely holding a lease. (At 10 ms jobs the queue was
# drained before the second kill on a busy machine: the kills hit only idle or starting workers.)
JOB = 0.05


@pytest.fixture
def make_run(fault_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[type]:
    """Builds this test's FaultRun; closes it (and any process left) afterwards."""
    runs: list[FaultRun] = []
    url = fault_url

    def build(scenario: str, **options: float) -> FaultRun:
        backend = request.node.callspec.params["fault_url"]
        fault_run = FaultRun(f"{backend}: {scenario}", url, tmp_path, **options)
        runs.append(fault_run)
        return fault_run

    yield build  # type: ignore[misc]
    for fault_run in runs:
        fault_run.close()


def assert_clean(outcome: object) -> None:
    assert outcome.violations == 0, outcome.describe()  # type: ignore[attr-defined]


@pytest.mark.parametrize("point", crashpoints.POINTS)
def test_sigkill_at_named_point(make_run: type, point: str, fault_url: str) -> None:
    if point == "before_commit" and not fault_url.startswith("sqlite"):
        pytest.skip(
            "not applicable: a PostgreSQL, Redis or MariaDB claim is one atomic statement, "
            "script or autocommit CALL, with no client-side step between its writes and its commit"
        )
    run = make_run(f"crash at {point}", lease=1.0)
    crashers = [
        run.spawn(run.config(f"c{i}", job_seconds=0.01, env={crashpoints.ENV: f"{point}:{1 + i}"}))
        for i in range(3)
    ]
    healthy = [run.spawn(run.config(f"w{i}", job_seconds=0.01)) for i in range(2)]
    run.wait_ready(crashers + healthy)
    run.enqueue(60)  # every worker is waiting: each gets a share
    assert run.wait_until_finished(90), "the workers did not finish the queue"
    outcome = run.finish()
    assert_clean(outcome)
    crashed = [p.exitcode for p in crashers]
    assert crashed.count(crashpoints.EXIT_CODE) >= 1, f"no worker reached {point}: {crashed}"
    assert all(d <= RECLAIM_SLACK for d in outcome.reclaim_delays), outcome.reclaim_delays


def _kill_storm(make_run: type, *, items: int, seconds: float, workers: int) -> None:
    run = make_run(f"SIGKILL storm {seconds:g}s", lease=1.0)
    run.enqueue(items)
    rng = random.Random(7)
    live = [run.spawn(run.config(f"s{i}", job_seconds=JOB), events=False) for i in range(workers)]
    # One worker is never killed: a killed holder's item then has someone to take it when its
    # lease ends, so the re-claim delay measures the store, not how long respawned workers take
    # to start on a busy machine.
    run.spawn(run.config("keep", job_seconds=JOB), events=False)
    run.wait_until_done(workers)  # the first kill lands on working workers, not starting ones
    end = time.monotonic() + seconds
    spawned = workers
    while time.monotonic() < end:
        time.sleep(rng.uniform(0.2, 0.5))  # the storm's rhythm: a kill every 200-500 ms
        victim = live.pop(rng.randrange(len(live)))
        run.kill(victim)
        victim.join(10)
        live.append(run.spawn(run.config(f"s{spawned}", job_seconds=JOB), events=False))
        spawned += 1
    heal = time.monotonic_ns()
    assert run.wait_until_finished(120), "the workers did not finish the queue after the storm"
    outcome = run.finish(recovery_from_ns=heal)
    assert_clean(outcome)
    assert all(d <= RECLAIM_SLACK for d in outcome.reclaim_delays), outcome.reclaim_delays


def test_sigkill_storm(make_run: type) -> None:
    _kill_storm(make_run, items=300, seconds=4.0, workers=4)


@pytest.mark.soak
def test_sigkill_storm_soak(make_run: type) -> None:
    _kill_storm(make_run, items=2_000, seconds=30.0, workers=8)


def test_paused_holder_is_fenced(make_run: type) -> None:
    """SIGSTOP a holder past its lease; another worker takes the item and finishes it; SIGCONT:
    the holder's heartbeat, complete, release and fail are refused and its effect is rejected."""
    run = make_run("paused holder (SIGSTOP past lease)", lease=1.0)
    [item] = run.enqueue(1)
    holder = run.spawn(run.config("holder", job_seconds=3.0, try_all_fenced=True, max_items=1))
    name, _, what, claimed, token = run.next_event(holder)
    assert (name, what, claimed) == ("holder", "claimed", item)
    run.kill(holder, signal.SIGSTOP)
    thief = run.spawn(run.config("thief", job_seconds=0.0, max_items=1))
    event = run.next_event(thief)
    assert event[:4] == ("thief", os_pid(thief), "claimed", item), event
    assert event[4] > token
    assert run.next_event(thief)[2:] == ("effect", item, event[4], True)
    thief.join(30)
    assert run.admin.get(item).status == "done"
    run.kill(holder, signal.SIGCONT)
    what, fenced_item, fenced_token, outcomes = run.next_event(holder)[2:]
    assert (what, fenced_item, fenced_token) == ("effect", item, token)
    assert outcomes is False, "the effect store accepted the paused holder's stale token"
    what, _, _, outcomes = run.next_event(holder)[2:]
    assert what == "fenced"
    assert outcomes == {
        "effect": False,
        "heartbeat": False,
        "complete": False,
        "release": False,
        "fail": False,
    }
    outcome = run.finish()
    assert_clean(outcome)
    assert outcome.effects.rejected_stale == 1
    assert run.admin.get(item).status == "done"


def os_pid(process: object) -> int:
    return int(process.pid)  # type: ignore[attr-defined]


def test_heartbeating_job_is_never_reclaimed(make_run: type) -> None:
    """A job running three times its lease, heartbeating every third of it, keeps its item."""
    run = make_run("heartbeat 3x lease", lease=1.0)
    items = run.enqueue(3)
    holders = [
        run.spawn(run.config(f"hb{i}", job_seconds=3.0, heartbeat_every=1 / 3, max_items=1))
        for i in range(3)
    ]
    claimed = {run.next_event(holder)[3] for holder in holders}
    assert claimed == set(items)
    # Idle workers that would take any item whose lease lapsed.
    for i in range(2):
        run.spawn(run.config(f"idle{i}", job_seconds=0.0, idle_wait=0.05))
    assert run.wait_until_finished(60)
    outcome = run.finish()
    assert_clean(outcome)
    assert outcome.reclaims == 0, "a heartbeating item was claimed again"
    assert outcome.effects.duplicate_executions == 0
