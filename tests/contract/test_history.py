"""Attempt history: every state change leaves one event, written with the change, pruned with it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import at, claim_one
from workclaim import EventKind, ItemNotFound, LeaseLost, Settings, Status


def kinds(q: Any, item_id: int) -> list[str]:
    """The item's history as a list of event kinds."""
    return [str(event.kind) for event in q.history(item_id)]


def test_a_full_life_is_recorded_in_order(queue: Any) -> None:
    item_id = queue.enqueue("jobs", {"n": 1}, max_attempts=3, now=at(0))
    assert queue.history(item_id) == []  # enqueue itself is the item's created_at
    first = claim_one(queue, t=1, lease_seconds=10, worker="w1")
    queue.heartbeat(first, now=at(2))
    queue.release(first, now=at(3))
    second = claim_one(queue, t=4, lease_seconds=10, worker="w2")
    queue.fail(second, "boom", now=at(5))
    third = claim_one(queue, t=100, lease_seconds=10, worker="w3")
    queue.complete(third, now=at(101))
    events = queue.history(item_id)
    assert [e.kind for e in events] == [
        EventKind.CLAIMED,
        EventKind.HEARTBEAT,
        EventKind.RELEASED,
        EventKind.CLAIMED,
        EventKind.FAILED,
        EventKind.CLAIMED,
        EventKind.COMPLETED,
    ]
    assert [e.at for e in events] == [at(1), at(2), at(3), at(4), at(5), at(100), at(101)]
    assert [e.worker for e in events] == ["w1", "w1", "w1", "w2", "w2", "w3", "w3"]
    assert [e.token for e in events] == [first.token] * 3 + [second.token] * 2 + [third.token] * 2
    assert [e.attempt for e in events] == [1, 1, 1, 1, 1, 2, 2]
    assert [e.status for e in events] == [
        Status.CLAIMED,
        Status.CLAIMED,
        Status.QUEUED,
        Status.CLAIMED,
        Status.QUEUED,
        Status.CLAIMED,
        Status.DONE,
    ]
    assert events[4].error == "boom"
    assert all(e.item_id == item_id for e in events)
    assert [e.error for e in events if e.kind != EventKind.FAILED] == [None] * 6


def test_expiry_is_recorded_with_the_expired_lease(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, max_attempts=1, now=at(0))
    lease = claim_one(queue, t=0, lease_seconds=5, worker="gone")
    assert queue.claim("jobs", worker="w2", now=at(10)) == []  # reaps: no attempt left -> dead
    events = queue.history(item_id)
    assert [e.kind for e in events] == [EventKind.CLAIMED, EventKind.EXPIRED]
    expired = events[1]
    assert (expired.token, expired.worker, expired.attempt) == (lease.token, "gone", 1)
    assert expired.status == Status.DEAD
    assert expired.error is not None and "expired" in expired.error


def test_admin_actions_are_recorded(queue: Any) -> None:
    dead_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0)
    queue.fail(lease, "fatal", retry=False, now=at(1))
    queue.requeue(dead_id, now=at(2))
    assert kinds(queue, dead_id) == ["claimed", "failed", "requeued"]
    requeued = queue.history(dead_id)[-1]
    # attempt: the item's count right after the change (a requeue resets it)
    assert (requeued.status, requeued.token, requeued.worker, requeued.at, requeued.attempt) == (
        Status.QUEUED,
        None,
        None,
        at(2),
        0,
    )
    other = queue.enqueue("other", 2, now=at(0))
    queue.cancel(other, now=at(3))
    assert kinds(queue, other) == ["cancelled"]
    cancelled = queue.history(other)[0]
    assert (cancelled.status, cancelled.attempt) == (Status.CANCELLED, 0)


def test_refused_and_repeated_calls_write_nothing(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0, lease_seconds=5)
    queue.complete(lease, now=at(1))
    queue.complete(lease, now=at(2))  # the idempotent repeat
    with pytest.raises(LeaseLost):
        queue.heartbeat(lease, now=at(3))
    with pytest.raises(LeaseLost):
        queue.release(lease, now=at(3))
    assert kinds(queue, item_id) == ["claimed", "completed"]


def test_history_of_an_unknown_item_raises(queue: Any) -> None:
    with pytest.raises(ItemNotFound):
        queue.history(987_654)


def test_purge_removes_the_history_with_the_item(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    queue.complete(claim_one(queue, t=0), now=at(1))
    assert queue.purge("jobs", older_than=10, now=at(100)) == 1
    with pytest.raises(ItemNotFound):
        queue.history(item_id)


@pytest.mark.parametrize("settings", [Settings(queue_history={"quiet": False})])
def test_history_can_be_switched_off_per_queue(queue: Any) -> None:
    loud = queue.enqueue("loud", 1, now=at(0))
    quiet = queue.enqueue("quiet", 1, now=at(0))
    for name in ("loud", "quiet"):
        queue.complete(claim_one(queue, name, t=0), now=at(1))
    assert kinds(queue, loud) == ["claimed", "completed"]
    assert queue.history(quiet) == []


@pytest.mark.parametrize("settings", [Settings(history=False)])
def test_history_can_be_switched_off_for_every_queue(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, max_attempts=1, now=at(0))
    claim_one(queue, t=0, lease_seconds=5)
    queue.claim("jobs", worker="w2", now=at(10))  # an expiry is not recorded either
    assert queue.history(item_id) == []
    assert queue.get(item_id).status == Status.DEAD
