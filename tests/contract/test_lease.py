"""Leases: heartbeats, completion, release, failure, fencing and idempotent repeats."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from tests.contract.helpers import at, claim_one, status_of
from workclaim import Lease, LeaseLost, Status

EndCall = Callable[[Any, Lease, float], object]

END_CALLS: dict[str, EndCall] = {
    "heartbeat": lambda q, lease, t: q.heartbeat(lease, now=at(t)),
    "complete": lambda q, lease, t: q.complete(lease, now=at(t)),
    "release": lambda q, lease, t: q.release(lease, now=at(t)),
    "fail": lambda q, lease, t: q.fail(lease, "boom", now=at(t)),
    "fail-dead": lambda q, lease, t: q.fail(lease, "boom", retry=False, now=at(t)),
}


def snapshot(q: Any, item_id: int) -> tuple[Any, ...]:
    """What a refused call must leave unchanged."""
    item = q.get(item_id)
    return (item.status, item.attempts, item.worker, item.expires_at, item.run_at, item.last_error)


def test_heartbeat_extends_by_the_lease_length_or_by_extend(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0, lease_seconds=10)
    longer = queue.heartbeat(lease, now=at(8))
    assert longer.expires_at == at(18)
    assert (longer.id, longer.token, longer.attempt) == (lease.id, lease.token, lease.attempt)
    custom = queue.heartbeat(longer, extend=100, now=at(17))
    assert custom.expires_at == at(117)
    assert queue.get(item_id).expires_at == at(117)
    # the old lease object still works: the token is what counts, not the expiry it carries
    assert queue.heartbeat(lease, extend=5, now=at(20)).expires_at == at(25)


def test_a_heartbeating_lease_is_not_claimed_by_others(queue: Any) -> None:
    queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0, lease_seconds=10)
    for t in range(5, 60, 5):
        lease = queue.heartbeat(lease, now=at(t))
        assert queue.claim("jobs", worker="w2", now=at(t + 1)) == []


@pytest.mark.parametrize("call", sorted(END_CALLS))
def test_an_expired_lease_is_lost_and_nothing_changes(queue: Any, call: str) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0, lease_seconds=10)
    before = snapshot(queue, item_id)
    with pytest.raises(LeaseLost):
        END_CALLS[call](queue, lease, 10)  # expires_at <= now: expired
    assert snapshot(queue, item_id) == before


def test_a_heartbeat_never_revives_an_expired_lease(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0, lease_seconds=10)
    with pytest.raises(LeaseLost):
        queue.heartbeat(lease, extend=1000, now=at(10.5))
    other = claim_one(queue, t=11, worker="w2")
    assert other.id == item_id and other.token > lease.token


@pytest.mark.parametrize("call", sorted(END_CALLS))
def test_a_stale_token_is_refused_after_someone_else_claimed(queue: Any, call: str) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    stale = claim_one(queue, t=0, lease_seconds=10, worker="w1")
    fresh = claim_one(queue, t=11, lease_seconds=10, worker="w2")
    before = snapshot(queue, item_id)
    with pytest.raises(LeaseLost):
        END_CALLS[call](queue, stale, 12)
    assert snapshot(queue, item_id) == before
    queue.complete(fresh, now=at(13))
    assert status_of(queue, item_id) == "done"


@pytest.mark.parametrize("call", sorted(END_CALLS))
def test_another_workers_lease_is_refused(queue: Any, call: str) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0, lease_seconds=10, worker="owner")
    forged = dataclasses.replace(lease, worker="intruder")
    before = snapshot(queue, item_id)
    with pytest.raises(LeaseLost):
        END_CALLS[call](queue, forged, 1)
    assert snapshot(queue, item_id) == before


@pytest.mark.parametrize("call", sorted(END_CALLS))
def test_a_made_up_token_is_refused(queue: Any, call: str) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0, lease_seconds=10)
    forged = dataclasses.replace(lease, token=lease.token + 1_000)
    before = snapshot(queue, item_id)
    with pytest.raises(LeaseLost):
        END_CALLS[call](queue, forged, 1)
    assert snapshot(queue, item_id) == before


def test_complete_marks_done_and_stores_the_result(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0)
    queue.complete(lease, result={"sent": True}, now=at(1))
    item = queue.get(item_id)
    assert item.status is Status.DONE
    assert item.result == {"sent": True}
    assert item.expires_at is None
    assert queue.claim("jobs", worker="w1", now=at(100)) == []


def test_repeating_the_call_that_ended_a_lease_returns_its_outcome(queue: Any) -> None:
    done_id, released_id, retried_id, dead_id = queue.enqueue_many("jobs", [1, 2, 3, 4], now=at(0))
    leases = {lease.id: lease for lease in queue.claim("jobs", worker="w1", limit=4, now=at(0))}
    queue.complete(leases[done_id], now=at(1))
    queue.complete(leases[done_id], now=at(2))
    queue.release(leases[released_id], delay=100, now=at(1))
    queue.release(leases[released_id], delay=100, now=at(2))
    assert queue.fail(leases[retried_id], "x", now=at(1)) is Status.QUEUED
    assert queue.fail(leases[retried_id], "x", now=at(2)) is Status.QUEUED
    assert queue.fail(leases[dead_id], "x", retry=False, now=at(1)) is Status.DEAD
    assert queue.fail(leases[dead_id], "x", retry=False, now=at(2)) is Status.DEAD
    assert [status_of(queue, i) for i in (done_id, released_id, retried_id, dead_id)] == [
        "done",
        "queued",
        "queued",
        "dead",
    ]
    assert queue.get(released_id).run_at == at(101)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("complete", "release"),
        ("complete", "fail"),
        ("release", "complete"),
        ("fail", "complete"),
        ("complete", "heartbeat"),
    ],
)
def test_a_different_call_after_a_lease_ended_is_refused(
    queue: Any, first: str, second: str
) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0)
    END_CALLS[first](queue, lease, 1)
    before = snapshot(queue, item_id)
    with pytest.raises(LeaseLost):
        END_CALLS[second](queue, lease, 2)
    assert snapshot(queue, item_id) == before


@pytest.mark.parametrize("call", ["complete", "fail", "fail-dead", "release"])
def test_an_expired_holder_repeating_the_next_holders_call_is_refused(
    queue: Any, call: str
) -> None:
    """Only the same token repeats: the next holder's call ended the item's last lease, and the
    same call with the expired holder's token is still `LeaseLost`."""
    item_id = queue.enqueue("jobs", 1, now=at(0))
    stale = claim_one(queue, t=0, lease_seconds=10, worker="w1")
    fresh = claim_one(queue, t=20, lease_seconds=10, worker="w2")
    END_CALLS[call](queue, fresh, 21)
    before = snapshot(queue, item_id)
    with pytest.raises(LeaseLost):
        END_CALLS[call](queue, stale, 22)
    assert snapshot(queue, item_id) == before


def test_release_puts_the_item_back_after_a_delay(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0)
    queue.release(lease, delay=30, now=at(5))
    item = queue.get(item_id)
    assert (item.status, item.attempts, item.run_at) == (Status.QUEUED, 0, at(35))
    assert queue.claim("jobs", worker="w1", now=at(34)) == []
    assert claim_one(queue, t=35).attempt == 1


def test_fail_retries_with_backoff_until_attempts_run_out(queue: Any) -> None:
    # settings fixture: backoff base 10 s, factor 2, no jitter
    item_id = queue.enqueue("jobs", 1, max_attempts=3, now=at(0))
    lease = claim_one(queue, t=0)
    assert queue.fail(lease, "first", now=at(1)) is Status.QUEUED
    assert queue.get(item_id).run_at == at(11)
    assert queue.get(item_id).last_error == "first"
    lease = claim_one(queue, t=11)
    assert lease.attempt == 2
    assert queue.fail(lease, "second", now=at(12)) is Status.QUEUED
    assert queue.get(item_id).run_at == at(32)
    lease = claim_one(queue, t=32)
    assert queue.fail(lease, "third", now=at(33)) is Status.DEAD
    item = queue.get(item_id)
    assert (item.status, item.attempts, item.last_error) == (Status.DEAD, 3, "third")
    assert queue.claim("jobs", worker="w1", now=at(10_000)) == []


def test_fail_with_retry_delay_waits_exactly_that_long_within_max_attempts(queue: Any) -> None:
    # settings fixture: backoff base 10 s; retry_delay replaces it, attempts still count
    item_id = queue.enqueue("jobs", 1, max_attempts=2, now=at(0))
    lease = claim_one(queue, t=0)
    assert queue.fail(lease, "busy", retry_delay=3.5, now=at(1)) is Status.QUEUED
    assert queue.get(item_id).run_at == at(4.5)
    lease = claim_one(queue, t=4.5)
    assert queue.fail(lease, "busy", retry_delay=3.5, now=at(5)) is Status.DEAD
    assert queue.get(item_id).attempts == 2


def test_fail_without_retry_goes_dead_at_once(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, max_attempts=10, now=at(0))
    lease = claim_one(queue, t=0)
    assert queue.fail(lease, ValueError("bad input"), retry=False, now=at(1)) is Status.DEAD
    item = queue.get(item_id)
    assert item.status is Status.DEAD
    assert "bad input" in (item.last_error or "")


def test_long_error_messages_are_clipped(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0)
    queue.fail(lease, "e" * 1_000_000, retry=False, now=at(1))
    error = queue.get(item_id).last_error or ""
    assert 1_000 < len(error) <= 65_536
