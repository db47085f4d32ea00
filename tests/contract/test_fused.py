"""complete_and_claim: the worker runtime's one round trip per turn, fenced like complete."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import at, claim_one, status_of
from workclaim import EventKind, ValidationError


def test_completes_then_claims_the_next_items(queue: Any) -> None:
    ids = queue.enqueue_many("jobs", list(range(5)), now=at(0))
    first = queue.claim("jobs", worker="w1", limit=2, now=at(0))
    lost, leases = queue.complete_and_claim(
        [first[0], (first[1], {"ok": True})],
        "jobs",
        worker="w1",
        limit=2,
        lease_seconds=10,
        now=at(1),
    )
    assert lost == []
    assert [status_of(queue, i) for i in ids[:2]] == ["done", "done"]
    assert queue.get(ids[1]).result == {"ok": True}
    assert [lease.id for lease in leases] == ids[2:4]
    assert all(lease.expires_at == at(11) and lease.worker == "w1" for lease in leases)
    assert min(lease.token for lease in leases) > max(lease.token for lease in first)
    assert [e.kind for e in queue.history(ids[0])] == [EventKind.CLAIMED, EventKind.COMPLETED]


def test_a_stale_lease_is_reported_lost_and_the_rest_still_happens(queue: Any) -> None:
    a, b = queue.enqueue_many("jobs", [1, 2], max_attempts=3, now=at(0))
    old = claim_one(queue, t=0, lease_seconds=5, worker="w1")  # item a
    fresh = claim_one(queue, t=1, lease_seconds=50, worker="w1")  # item b
    newer = claim_one(queue, t=10, worker="w2")  # a again: its lease expired, w2 holds it
    assert newer.id == a
    lost, leases = queue.complete_and_claim([old, fresh], "jobs", worker="w1", now=at(11))
    assert lost == [old]
    assert leases == []  # nothing else is claimable
    assert status_of(queue, a) == "claimed" and queue.get(a).worker == "w2"
    assert status_of(queue, b) == "done"
    queue.complete(newer, now=at(12))  # the current holder is untouched and still works
    assert status_of(queue, a) == "done"


def test_a_repeated_completion_is_not_lost(queue: Any) -> None:
    queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0)
    queue.complete(lease, now=at(1))
    lost, leases = queue.complete_and_claim([lease], "jobs", worker="w1", now=at(2))
    assert (lost, leases) == ([], [])


def test_max_zero_only_completes_and_nothing_done_only_claims(queue: Any) -> None:
    ids = queue.enqueue_many("jobs", [1, 2], now=at(0))
    lease = claim_one(queue, t=0)
    assert queue.complete_and_claim([lease], "jobs", worker="w1", limit=0, now=at(1)) == ([], [])
    assert status_of(queue, ids[0]) == "done"
    assert status_of(queue, ids[1]) == "queued"
    lost, leases = queue.complete_and_claim([], "jobs", worker="w1", limit=5, now=at(2))
    assert lost == [] and [lease.id for lease in leases] == [ids[1]]


def test_claims_in_priority_order_across_queues_and_reaps_first(queue: Any) -> None:
    low = queue.enqueue("a", 1, priority=5, now=at(0))
    high = queue.enqueue("b", 2, priority=1, now=at(0))
    expired = queue.enqueue("a", 3, priority=0, max_attempts=1, now=at(0))
    claim_one(queue, "a", t=0, lease_seconds=1, worker="gone")  # takes `expired` (priority 0)
    _, leases = queue.complete_and_claim([], ["a", "b"], worker="w1", limit=5, now=at(5))
    assert [lease.id for lease in leases] == [high, low]
    assert status_of(queue, expired) == "dead"


def test_bad_arguments_are_refused_before_anything_changes(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0)
    with pytest.raises(ValidationError):
        queue.complete_and_claim([lease], "bad queue!", worker="w1", now=at(1))
    with pytest.raises(ValidationError):
        queue.complete_and_claim(["not a lease"], "jobs", worker="w1", now=at(1))
    with pytest.raises(ValidationError):
        queue.complete_and_claim([lease], "jobs", worker="w1", limit=-1, now=at(1))
    assert status_of(queue, item_id) == "claimed"
