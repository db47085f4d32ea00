"""The flow-control race on every backend: real worker processes under a queue policy (a global
`concurrency`, `group_concurrency` of 1 then 3 over 1,000 groups, a queue rate and a group
rate), SIGKILLed workers, holders stalled past their leases, pause and resume flipping while they
claim, and many claimers released together at a group with one free slot. The recorded history,
with each lease's store-clock end read from its item's attempt history, must pass every
invariant of the checker (docs/flow-control.md); nothing may be lost.
"""

from __future__ import annotations

import itertools
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import FaultRun
from tests.faults.worker import barrier_claims
from workclaim.bench.history import CheckResult, Event, check, load_history

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GROUPS = 1_000
HOT = 120  # items of one group every worker wants
SLOT_QUEUE = "flow-slot"
RATE = 250  # claims a second: the run lasts a few seconds, long enough for the flips
LEASE = 1.0
CLAIMERS = 10  # released together at a group with one free slot
ROUNDS = 3
WORKERS = 8
STALLERS = 2  # workers whose jobs outlast their leases (no heartbeat)
KILLS = 3
FLIPS = 6


def test_limits_hold_under_a_real_race(backend_name: str, store_url: str, tmp_path: Path) -> None:
    run = FaultRun(f"{backend_name}: flow race", store_url, tmp_path, lease=LEASE)
    try:
        slot = OneFreeSlot(run)  # its processes start beside the race's, on a queue of its own
        kills = _race(run)
        one_slot_counts = slot.counts()
        result, events = _finish(run)
    finally:
        run.close()

    assert result.ok, result.summary()
    assert one_slot_counts == [1] * ROUNDS, "exactly one claimer may take the one free slot"
    assert all(result.checked.values()), result.summary()
    assert result.counts["lease_ends"] >= result.counts["items_granted"]
    assert kills == KILLS
    assert result.counts["pause:ok"] == FLIPS // 2 and result.counts["resume:ok"] == FLIPS // 2
    assert result.counts.get("complete:fail", 0) >= 1, "no stalled holder was refused"
    assert result.counts["grants"] > result.counts["items_granted"]  # stalls and kills re-ran
    assert _claims_refused_while_paused(events) >= 1, "no claim ran into a pause"


class OneFreeSlot:
    """`CLAIMERS` processes, released by a barrier `ROUNDS` times, each claim a batch of 2 from
    a queue whose only group has one free slot (group_concurrency 1, `ROUNDS` items queued);
    the winner completes its item before the next round."""

    def __init__(self, run: FaultRun) -> None:
        run.set_policy(SLOT_QUEUE, group_concurrency=1)
        run.enqueue(ROUNDS, group="one-slot", queue=SLOT_QUEUE)
        # Kept on self: the children must unpickle it while the parent still holds it.
        self.barrier = barrier = run.ctx.Barrier(CLAIMERS)
        self.out = run.ctx.Queue()
        self.procs: list[Any] = [
            run.ctx.Process(
                target=barrier_claims,
                args=(
                    run.config(f"b{i}", queue=SLOT_QUEUE, lease=30.0),
                    barrier,
                    ROUNDS,
                    2,
                    self.out,
                ),
                daemon=True,
            )
            for i in range(CLAIMERS)
        ]
        for i, p in enumerate(self.procs):
            p.start()
            p._wc_name, p._wc_events = f"b{i}", None
        run.procs.extend(self.procs)  # stopped with the race's workers, killed if left over

    def counts(self) -> list[int]:
        """Per round, how many items all the claimers got together."""
        got = [int(self.out.get(timeout=120)) for _ in range(CLAIMERS * ROUNDS)]
        for p in self.procs:
            p.join(60)
            assert p.exitcode == 0, f"a barrier claimer exited with {p.exitcode}"
        self.out.close()
        # The barrier orders the rounds: every report of a round comes before any of the next.
        return [sum(got[r * CLAIMERS : (r + 1) * CLAIMERS]) for r in range(ROUNDS)]


def _race(run: FaultRun) -> int:
    """The main race; returns how many workers were SIGKILLed."""
    rng = random.Random(15)
    run.set_policy(concurrency=16, group_concurrency=1, rate=(RATE, 1.0), group_rate=(3, 1.0))
    live = [
        # After each job, every fenced call in turn: all refused, whether or not a later
        # holder of the item has already written its effect (which timing decides).
        run.spawn(run.config(f"s{i}", job_seconds=1.5 * LEASE, max_items=2, try_all_fenced=True))
        for i in range(STALLERS)
    ]
    live += [
        run.spawn(run.config(f"w{i}", job_seconds=0.005, batch=1 + i % 3)) for i in range(WORKERS)
    ]
    # Every worker is up before the first item is queued: a slow start (a loaded machine, a
    # pooler in the way) must not leave the stallers nothing to stall on.
    run.wait_ready(live)
    run.enqueue(HOT, group="hot")
    run.enqueue(40)  # the default group
    for g in range(GROUPS):
        run.enqueue(1, group=f"g{g}")
    spawned, kills = len(live), 0
    for flip in range(FLIPS):
        time.sleep(rng.uniform(0.2, 0.4))  # the race's rhythm: let the workers claim a while
        run.flip(paused=flip % 2 == 0)
        if flip == FLIPS // 2:
            run.set_policy(concurrency=24, group_concurrency=3, rate=(RATE, 1.0), group_rate=None)
        if kills < KILLS:
            victim = live.pop(rng.randrange(STALLERS, len(live)))
            run.kill(victim, signal.SIGKILL)
            victim.join(10)
            kills += 1
            live.append(run.spawn(run.config(f"w{spawned}", job_seconds=0.005), events=False))
            spawned += 1
    assert run.wait_until_finished(120), "the workers did not finish the queue"
    return kills


def _finish(run: FaultRun) -> tuple[CheckResult, list[Event]]:
    """Stop, drain, read the final state and every lease's store-clock end, check."""
    run.stop_workers()
    run.drain()
    run.rec.close()
    events = load_history(sorted(run.dir.glob("*.jsonl")))
    final = run.final_state(events)
    assert sorted(set(final.values())) == ["done"], final
    run.record_lease_ends(events)
    events = load_history(sorted(run.dir.glob("*.jsonl")))
    return check(events, final_state=final), events


def _claims_refused_while_paused(events: list[Event]) -> int:
    """Claims invoked after a pause returned that ended, empty, before the next resume began."""
    invokes = {e["op_id"]: e for e in events if e["phase"] == "invoke"}
    flips: list[tuple[int, int, str]] = []
    claims: list[tuple[int, int, bool]] = []
    for e in events:
        if e["phase"] == "invoke" or e["op_id"] not in invokes:
            continue
        start = int(invokes[e["op_id"]]["t_mono_ns"])
        if e["kind"] in ("pause", "resume"):
            flips.append((start, int(e["t_mono_ns"]), str(e["kind"])))
        elif e["kind"] == "claim" and e["phase"] == "ok":
            claims.append((start, int(e["t_mono_ns"]), "item_id" in e))
    flips.sort()
    windows: list[Any] = []
    for (_, paused_at, kind), (resumed_at, _, _) in itertools.pairwise(flips):
        if kind == "pause":
            windows.append((paused_at, resumed_at))
    return sum(
        1
        for start, end, took in claims
        if not took and any(a < start and end < b for a, b in windows)
    )
