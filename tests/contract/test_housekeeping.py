"""Inspection and housekeeping: get, stats, cancel, requeue, purge and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import workclaim.queue as queue_module
from tests.contract.helpers import at, claim_one, status_of
from workclaim import InvalidState, ItemNotFound, Queue, Settings, Status, ValidationError


def test_get_an_unknown_item_raises(queue: Any) -> None:
    with pytest.raises(ItemNotFound):
        queue.get(987_654_321)


@pytest.mark.parametrize("bad", [0, -1, 2**53, "1", 1.0, True])
def test_bad_item_ids_are_refused(queue: Any, bad: Any) -> None:
    with pytest.raises(ValidationError):
        queue.get(bad)


def test_stats_count_each_status_and_expired_leases(queue: Any) -> None:
    ids = queue.enqueue_many("jobs", list(range(7)), max_attempts=1, now=at(0))
    leases = queue.claim("jobs", worker="w1", limit=5, now=at(0), lease_seconds=10)
    queue.complete(leases[0], now=at(1))
    queue.fail(leases[1], "x", retry=False, now=at(1))
    queue.cancel(ids[6], now=at(1))
    queue.heartbeat(leases[2], extend=100, now=at(1))
    stats = queue.stats("jobs", now=at(20))
    assert (stats.queued, stats.claimed, stats.done, stats.dead, stats.cancelled) == (1, 3, 1, 1, 1)
    assert stats.expired == 2
    assert stats.total == 7
    empty = queue.stats("never-used")
    assert (empty.queue, empty.total, empty.expired) == ("never-used", 0, 0)


def test_cancel_works_on_queued_items_only(queue: Any) -> None:
    queued, claimed, done = queue.enqueue_many("jobs", [1, 2, 3], now=at(0))
    queue.cancel(queued, now=at(1))
    assert status_of(queue, queued) == "cancelled"
    leases = {lease.id: lease for lease in queue.claim("jobs", worker="w1", limit=2, now=at(1))}
    queue.complete(leases[done], now=at(2))
    for item_id in (claimed, done, queued):
        with pytest.raises(InvalidState):
            queue.cancel(item_id, now=at(3))
    assert status_of(queue, claimed) == "claimed"
    with pytest.raises(ItemNotFound):
        queue.cancel(987_654_321)
    assert queue.claim("jobs", worker="w1", now=at(20)) == []


def test_requeue_brings_a_dead_item_back_with_fresh_attempts(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, max_attempts=1, now=at(0))
    queue.fail(claim_one(queue, t=0), "x", now=at(1))
    assert status_of(queue, item_id) == "dead"
    queue.requeue(item_id, now=at(2))
    item = queue.get(item_id)
    assert (item.status, item.attempts, item.max_attempts) == (Status.QUEUED, 0, 1)
    lease = claim_one(queue, t=2)
    assert lease.attempt == 1
    queue.fail(lease, "again", now=at(3))
    queue.requeue(item_id, max_attempts=4, now=at(4))
    assert queue.get(item_id).max_attempts == 4


def test_requeue_refuses_items_that_are_not_dead(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    with pytest.raises(InvalidState):
        queue.requeue(item_id, now=at(1))
    with pytest.raises(ItemNotFound):
        queue.requeue(987_654_321)


def test_requeue_refuses_when_the_dedupe_key_is_held_again(queue: Any) -> None:
    first = queue.enqueue("jobs", 1, dedupe_key="k", max_attempts=1, now=at(0))
    queue.fail(claim_one(queue, t=0), "x", now=at(1))
    second = queue.enqueue("jobs", 2, dedupe_key="k", now=at(2))
    assert second != first
    with pytest.raises(InvalidState):
        queue.requeue(first, now=at(3))
    assert status_of(queue, first) == "dead"


def test_purge_deletes_only_old_finished_items(queue: Any) -> None:
    ids = queue.enqueue_many("jobs", list(range(5)), max_attempts=1, now=at(0))
    leases = queue.claim("jobs", worker="w1", limit=3, now=at(0))
    queue.complete(leases[0], now=at(10))
    queue.fail(leases[1], "x", now=at(10))
    queue.cancel(ids[3], now=at(50))
    # at t=100: done and dead finished 90 s ago, cancelled 50 s ago; one queued, one claimed
    assert queue.purge("other", older_than=60, now=at(100)) == 0
    assert queue.purge("jobs", older_than=60, now=at(100)) == 2
    with pytest.raises(ItemNotFound):
        queue.get(ids[0])
    assert status_of(queue, ids[3]) == "cancelled"
    assert queue.purge("jobs", older_than=0, now=at(100)) == 1
    assert {status_of(queue, ids[2]), status_of(queue, ids[4])} == {"claimed", "queued"}


def test_tokens_and_ids_are_not_reused_after_purge(queue: Any) -> None:
    first = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue, t=0)
    queue.complete(lease, now=at(1))
    assert queue.purge("jobs", older_than=0, now=at(2)) == 1
    second = queue.enqueue("jobs", 2, now=at(3))
    assert second > first
    assert claim_one(queue, t=3).token > lease.token


def test_retention_prunes_old_finished_items_automatically(
    queue: Any, store_url: str, settings: Settings
) -> None:
    # finished eight days ago (past the default seven days of retention) by the injected clock
    long_ago = datetime.now(UTC) - timedelta(days=8)
    old = queue.enqueue("jobs", 1, now=long_ago)
    [lease] = queue.claim("jobs", worker="w1", now=long_ago)
    queue.complete(lease, now=long_ago + timedelta(seconds=1))
    recent = queue.enqueue("jobs", 2)
    queue.complete(queue.claim("jobs", worker="w1")[0])
    # a new Queue prunes on its first claim; the recent item stays
    with Queue(store_url, settings=settings) as fresh:
        fresh.claim("jobs", worker="w1")
        with pytest.raises(ItemNotFound):
            fresh.get(old)
        assert fresh.get(recent).status is Status.DONE


def test_retention_catches_up_when_more_than_a_batch_is_due(
    queue: Any, store_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full batch brings the next one forward (to a second later, zero here), so a busy
    queue's retention keeps up; once caught up it waits its minute again. (Before, one batch a
    minute per process: at 1,000 items/s the table grew without bound, whatever the setting.)"""
    monkeypatch.setattr(queue_module, "PRUNE_BATCH", 10)
    monkeypatch.setattr(queue_module, "PRUNE_CATCH_UP_SECONDS", 0.0)
    long_ago = datetime.now(UTC) - timedelta(days=8)
    queue.enqueue_many("jobs", list(range(25)), now=long_ago)
    for lease in queue.claim("jobs", worker="w1", limit=25, now=long_ago):
        queue.complete(lease, now=long_ago + timedelta(seconds=1))
    with Queue(store_url, settings=settings) as fresh:
        done = []
        for _ in range(4):
            fresh.claim("jobs", worker="w1")
            done.append(fresh.stats("jobs").done)
        assert done == [15, 5, 0, 0]
        # caught up (a batch that was not full): the next prune is a minute away
        queue.enqueue("jobs", 1, now=long_ago)
        queue.complete(queue.claim("jobs", worker="w1", now=long_ago)[0], now=long_ago)
        fresh.claim("jobs", worker="w1")
        assert fresh.stats("jobs").done == 1
