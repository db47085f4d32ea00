"""The worker's heartbeat thread over a fake source: what it renews, what counts as a loss."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from workclaim.errors import BackendUnavailable, LeaseLost, WorkclaimError
from workclaim.models import Lease
from workclaim.worker._context import Context, Running
from workclaim.worker._heartbeats import Heartbeats
from workclaim.worker._state import FINISHING, RELEASED, WORKING, LeasePhase


def lease(item: int = 1, token: int = 10, seconds: float = 30.0) -> Lease:
    return Lease(
        id=item,
        queue="jobs",
        payload=None,
        token=token,
        attempt=1,
        max_attempts=3,
        expires_at=datetime.now(UTC) + timedelta(seconds=seconds),
        worker="w-1",
        lease_seconds=seconds,
    )


class FakeSource:
    """Renews every lease for 60 s, or raises `error` when one is set."""

    def __init__(self, error: WorkclaimError | None = None) -> None:
        self.error = error
        self.beats: list[int] = []

    def heartbeat(self, held: Lease) -> Lease:
        self.beats.append(held.id)
        if self.error is not None:
            raise self.error
        return replace(held, lease_seconds=60.0)


class Lost:
    """Records `lose(ctx, when)` calls the way the runtime would count them."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, ctx: Context, when: str) -> bool:
        ctx.lost.set()
        self.calls.append((ctx.lease.id, when))
        return True


def beats(source: FakeSource, *held: Running, every: float = 10.0) -> tuple[Heartbeats, Lost]:
    lost = Lost()
    running = {r.ctx.lease.id: r for r in held}
    return Heartbeats(source, running, threading.Condition(), every, lost), lost


def test_a_renewal_replaces_the_lease_and_counts_the_deadline_from_the_request() -> None:
    running = Running(ctx=Context(lease=lease()))
    hb, lost = beats(FakeSource(), running, every=10.0)
    before = time.monotonic()
    hb.beat(running)
    after = time.monotonic()
    assert running.ctx.lease.lease_seconds == 60.0
    assert before + 60.0 <= running.ctx._deadline <= after + 60.0
    assert before + 10.0 <= running.next_beat <= after + 10.0
    assert lost.calls == []


def test_a_refused_heartbeat_of_a_working_lease_is_a_loss() -> None:
    running = Running(ctx=Context(lease=lease()))
    hb, lost = beats(FakeSource(LeaseLost(1, 10)), running)
    hb.beat(running)
    assert lost.calls == [(1, "(heartbeat refused)")]
    assert running.ctx.lost.is_set()


@pytest.mark.parametrize("phase", [FINISHING, RELEASED])
def test_a_refusal_after_the_runtime_ended_the_lease_is_not_a_loss(phase: LeasePhase) -> None:
    running = Running(ctx=Context(lease=lease()), phase=phase)
    hb, lost = beats(FakeSource(LeaseLost(1, 10)), running)
    hb.beat(running)
    assert lost.calls == []


def test_a_renewal_that_returns_after_the_item_was_reported_keeps_the_old_lease() -> None:
    old = lease()
    running = Running(ctx=Context(lease=old, _deadline=5.0), phase=FINISHING)
    hb, _ = beats(FakeSource(), running)
    hb.beat(running)
    assert running.ctx.lease is old
    assert running.ctx._deadline == 5.0


def test_a_failed_heartbeat_is_tried_again_within_a_second() -> None:
    running = Running(ctx=Context(lease=lease()), next_beat=0.0)
    hb, lost = beats(FakeSource(BackendUnavailable("down")), running, every=10.0)
    before = time.monotonic()
    hb.beat(running)
    assert before + 1.0 <= running.next_beat <= time.monotonic() + 1.0
    assert lost.calls == []
    assert not running.ctx.lost.is_set()


def test_the_thread_beats_only_working_leases_that_are_due_and_not_lost() -> None:
    due = Running(ctx=Context(lease=lease(1)), next_beat=0.0)
    later = Running(ctx=Context(lease=lease(2)), next_beat=time.monotonic() + 3600)
    finishing = Running(ctx=Context(lease=lease(3)), next_beat=0.0, phase=FINISHING)
    gone = Running(ctx=Context(lease=lease(4)), next_beat=0.0)
    gone.ctx.lost.set()
    source = FakeSource()
    hb, _ = beats(source, due, later, finishing, gone, every=0.2)  # ticks every 0.05 s
    hb.start()
    try:
        deadline = time.monotonic() + 10
        while not source.beats and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        hb.stop()
    assert set(source.beats) == {1}
    assert due.phase is WORKING


def test_a_beat_far_past_its_time_is_warned_about_once_per_lease(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = time.monotonic()
    late = Running(ctx=Context(lease=lease(1, seconds=8.0)), next_beat=now - 6.0)
    on_time = Running(ctx=Context(lease=lease(2, seconds=8.0)), next_beat=now - 3.0)
    source = FakeSource()
    hb, _ = beats(source, late, on_time)
    with caplog.at_level("WARNING", logger="workclaim.worker"):
        hb.tick()
        late.next_beat = time.monotonic() - 6.0  # late again: no second warning
        hb.tick()
    assert sorted(source.beats) == [1, 1, 2]
    [warning] = caplog.records
    assert warning.getMessage().startswith("item 1: heartbeat ran 6.")
    assert "s late (lease 8.0 s); is the handler holding the GIL?" in warning.getMessage()
