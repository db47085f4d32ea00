"""Listing: the queues a store holds and their items by status, paged by id."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import at, claim_one
from workclaim import Status, ValidationError


def test_queues_lists_the_names_that_hold_items(queue: Any) -> None:
    assert queue.queues() == []
    queue.enqueue("zeta", 1, now=at(0))
    queue.enqueue("alpha", 1, now=at(0))
    queue.enqueue("alpha", 2, now=at(0))
    assert queue.queues() == ["alpha", "zeta"]
    queue.complete(claim_one(queue, "zeta", t=0), now=at(1))
    queue.purge("zeta", older_than=0, now=at(10))
    assert queue.queues() == ["alpha"]


def test_items_by_status_in_id_order_with_paging(queue: Any) -> None:
    ids = queue.enqueue_many("jobs", list(range(7)), now=at(0))
    queue.enqueue("other", "x", now=at(0))
    lease = claim_one(queue, t=0, worker="w9")
    queued = queue.items("jobs", "queued", limit=4)
    assert [item.id for item in queued] == ids[1:5]
    rest = queue.items("jobs", Status.QUEUED, limit=4, after=queued[-1].id)
    assert [item.id for item in rest] == ids[5:]
    [held] = queue.items("jobs", "claimed")
    assert (held.id, held.worker, held.expires_at) == (lease.id, "w9", lease.expires_at)
    assert held.payload == 0
    assert queue.items("jobs", "dead") == []
    assert queue.items("nowhere", "queued") == []


def test_dead_items_carry_their_last_error(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    queue.fail(claim_one(queue, t=0), "it broke", retry=False, now=at(1))
    [dead] = queue.items("jobs", "dead")
    assert (dead.id, dead.last_error, dead.status) == (item_id, "it broke", Status.DEAD)


@pytest.mark.parametrize(
    ("status", "options"),
    [
        ("lost", {}),
        ("queued", {"limit": 0}),
        ("queued", {"limit": 10**6}),
        ("queued", {"after": -1}),
    ],
)
def test_bad_listing_arguments_are_refused(
    queue: Any, status: str, options: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        queue.items("jobs", status, **options)


def test_a_bad_queue_name_is_refused(queue: Any) -> None:
    with pytest.raises(ValidationError):
        queue.items("no spaces allowed", "queued")
