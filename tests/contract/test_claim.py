"""Claiming: order, batches, delays, tokens, attempts and expired leases."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from tests.contract.helpers import at, claim_one, status_of
from workclaim import Status, ValidationError


def test_claim_on_an_empty_or_unknown_queue_returns_nothing(queue: Any) -> None:
    assert queue.claim("jobs", worker="w1", now=at(0)) == []
    assert queue.claim(["nothing", "here"], worker="w1", limit=10, now=at(0)) == []


def test_claim_returns_a_lease_for_the_item(queue: Any) -> None:
    item_id = queue.enqueue("jobs", {"x": 1}, now=at(0))
    lease = claim_one(queue, t=1, lease_seconds=30.0, worker="worker-7")
    assert (lease.id, lease.payload, lease.attempt, lease.worker) == (
        item_id,
        {"x": 1},
        1,
        "worker-7",
    )
    assert lease.expires_at == at(31)
    assert isinstance(lease.token, int) and 0 < lease.token < 2**53
    item = queue.get(item_id)
    assert item.status is Status.CLAIMED
    assert (item.attempts, item.worker, item.expires_at) == (1, "worker-7", at(31))


def test_a_claimed_item_is_not_claimed_again_while_its_lease_lives(queue: Any) -> None:
    queue.enqueue("jobs", 1, now=at(0))
    claim_one(queue, t=0, lease_seconds=10)
    assert queue.claim("jobs", worker="w2", now=at(9.999)) == []


def test_claim_order_is_priority_then_run_at_then_id(queue: Any) -> None:
    late = queue.enqueue("jobs", "late", priority=0, now=at(5))
    low = queue.enqueue("jobs", "low", priority=5, now=at(0))
    early = queue.enqueue("jobs", "early", priority=0, now=at(1))
    urgent = queue.enqueue("jobs", "urgent", priority=-3, now=at(9))
    tie_a = queue.enqueue("jobs", "tie-a", priority=0, now=at(1))
    leases = queue.claim("jobs", worker="w1", limit=10, now=at(10))
    assert [lease.id for lease in leases] == [urgent, early, tie_a, late, low]


def test_batch_claims_come_back_in_claim_order_with_increasing_tokens(queue: Any) -> None:
    ids = queue.enqueue_many("jobs", list(range(20)), now=at(0))
    leases = queue.claim("jobs", worker="w1", limit=7, now=at(1))
    assert [lease.id for lease in leases] == ids[:7]
    tokens = [lease.token for lease in leases]
    assert tokens == sorted(tokens) and len(set(tokens)) == 7
    rest = queue.claim("jobs", worker="w1", limit=100, now=at(1))
    assert [lease.id for lease in rest] == ids[7:]
    assert min(lease.token for lease in rest) > max(tokens)


def test_claim_merges_several_queues_in_claim_order(queue: Any) -> None:
    a1 = queue.enqueue("a", "a1", priority=2, now=at(0))
    b1 = queue.enqueue("b", "b1", priority=1, now=at(1))
    a2 = queue.enqueue("a", "a2", priority=1, now=at(2))
    queue.enqueue("c", "c1", priority=0, now=at(0))
    leases = queue.claim(["a", "b"], worker="w1", limit=10, now=at(3))
    assert [lease.id for lease in leases] == [b1, a2, a1]
    assert {lease.queue for lease in leases} == {"a", "b"}


def test_a_claim_of_several_queues_takes_at_most_its_limit(queue: Any) -> None:
    a = queue.enqueue_many("a", ["a1", "a2", "a3"], priority=1, now=at(0))
    b = queue.enqueue_many("b", ["b1", "b2", "b3"], priority=0, now=at(1))
    leases = queue.claim(["a", "b"], worker="w1", limit=2, now=at(2))
    assert [lease.id for lease in leases] == b[:2]
    _, leases = queue.complete_and_claim([], ["a", "b"], worker="w1", limit=2, now=at(3))
    assert [lease.id for lease in leases] == [b[2], a[0]]
    rest = queue.claim(["b", "a"], worker="w1", limit=5, now=at(4))
    assert [lease.id for lease in rest] == a[1:]


def test_delayed_items_wait_for_their_time(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, delay=60, now=at(0))
    assert queue.get(item_id).run_at == at(60)
    assert queue.claim("jobs", worker="w1", now=at(59.999)) == []
    assert claim_one(queue, t=60).id == item_id


def test_run_at_schedules_an_item(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, run_at=at(100), now=at(0))
    assert queue.claim("jobs", worker="w1", now=at(99)) == []
    assert claim_one(queue, t=100).id == item_id


def test_an_expired_lease_is_claimable_again_with_a_higher_token(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    first = claim_one(queue, t=0, lease_seconds=10, worker="w1")
    second = claim_one(queue, t=10, lease_seconds=10, worker="w2")
    assert second.id == item_id
    assert second.token > first.token
    assert second.attempt == 2
    third = claim_one(queue, t=25, lease_seconds=10, worker="w3")
    assert third.token > second.token and third.attempt == 3


def test_an_expired_lease_with_no_attempt_left_goes_dead(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, max_attempts=2, now=at(0))
    claim_one(queue, t=0, lease_seconds=5)
    claim_one(queue, t=5, lease_seconds=5)
    assert queue.claim("jobs", worker="w1", now=at(10)) == []
    item = queue.get(item_id)
    assert item.status is Status.DEAD
    assert item.attempts == 2
    assert item.last_error is not None and "expired" in item.last_error


def test_claim_respects_max(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(5)), now=at(0))
    assert len(queue.claim("jobs", worker="w1", limit=3, now=at(0))) == 3
    assert len(queue.claim("jobs", worker="w1", limit=3, now=at(0))) == 2
    assert queue.claim("jobs", worker="w1", limit=3, now=at(0)) == []


def test_tokens_are_unique_across_items_and_queues(queue: Any) -> None:
    queue.enqueue_many("a", list(range(5)), now=at(0))
    queue.enqueue_many("b", list(range(5)), now=at(0))
    tokens = [lease.token for lease in queue.claim("a", worker="w1", limit=5, now=at(0))]
    tokens += [lease.token for lease in queue.claim("b", worker="w2", limit=5, now=at(0))]
    assert len(set(tokens)) == 10


def test_release_gives_the_attempt_back_and_expiry_keeps_it(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, max_attempts=1, now=at(0))
    lease = claim_one(queue, t=0)
    queue.release(lease, now=at(1))
    assert queue.get(item_id).attempts == 0
    again = claim_one(queue, t=2, lease_seconds=5)
    assert again.attempt == 1
    assert queue.claim("jobs", worker="w1", now=at(7)) == []
    assert status_of(queue, item_id) == "dead"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"worker": "bad worker"}, "worker"),
        ({"worker": ""}, "worker"),
        ({"worker": "w", "lease_seconds": 0}, "lease"),
        ({"worker": "w", "lease_seconds": -1}, "lease"),
        ({"worker": "w", "lease_seconds": math.nan}, "lease"),
        ({"worker": "w", "lease_seconds": 10 * 86_400}, "lease"),
        ({"worker": "w", "limit": 0}, "limit"),
        ({"worker": "w", "limit": 10_001}, "limit"),
        ({"worker": "w", "wait": -1}, "wait"),
        ({"worker": "w", "wait": math.inf}, "wait"),
    ],
)
def test_bad_claim_arguments_are_refused(queue: Any, options: dict[str, Any], match: str) -> None:
    queue.enqueue("jobs", 1, now=at(0))
    with pytest.raises(ValidationError, match=match):
        queue.claim("jobs", now=at(0), **options)
    assert queue.stats("jobs").queued == 1


def test_claim_needs_at_least_one_queue(queue: Any) -> None:
    with pytest.raises(ValidationError):
        queue.claim([], worker="w1")


def test_a_lease_carries_the_time_its_item_was_enqueued(queue: Any) -> None:
    """Every way of claiming (plain, several queues, grouped, the fused turn) gives the item's
    enqueue time, the store time of its enqueue (= `Item.created_at`), not after the claim."""
    plain = queue.enqueue("jobs", "p", now=at(1))
    other = queue.enqueue("other", "o", now=at(2))
    grouped = queue.enqueue("grouped", "g", group="a", now=at(3))
    nxt = queue.enqueue("jobs", "n", now=at(4))
    first = claim_one(queue, t=10)
    merged = queue.claim(["other", "nothing"], worker="w1", now=at(11))
    flow = queue.claim("grouped", worker="w1", now=at(12))
    _, fused = queue.complete_and_claim([(first, None)], "jobs", worker="w1", now=at(13))
    leases = [first, *merged, *flow, *fused]
    assert [x.id for x in leases] == [plain, other, grouped, nxt]
    assert [x.enqueued_at for x in leases] == [at(1), at(2), at(3), at(4)]
    assert all(queue.get(x.id).enqueued_at == x.enqueued_at for x in leases)
    assert all(x.enqueued_at <= x.expires_at - timedelta(seconds=x.lease_seconds) for x in leases)
