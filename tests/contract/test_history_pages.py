"""An item's history comes in pages: `limit` events from position `start`, oldest or newest
first, so a long-running job's heartbeats never make one unbounded read (issue 13, 4)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import at, claim_one
from workclaim import ItemNotFound, ValidationError


def chatty_item(queue: Any, heartbeats: int) -> int:
    """An item claimed, heartbeaten `heartbeats` times and completed."""
    item_id: int = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue)
    for n in range(heartbeats):
        queue.heartbeat(lease, now=at(1 + n))
    queue.complete(lease, now=at(1 + heartbeats))
    return item_id


def test_pages_oldest_first_join_up_to_the_whole_history(queue: Any) -> None:
    item_id = chatty_item(queue, 23)
    whole = queue.history(item_id)
    assert [str(e.kind) for e in whole] == ["claimed"] + ["heartbeat"] * 23 + ["completed"]
    pages = [queue.history(item_id, limit=10, start=s) for s in (0, 10, 20)]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [e for page in pages for e in page] == whole
    assert queue.history(item_id, limit=10, start=25) == []
    assert queue.history(item_id, limit=10, start=10_000) == []


def test_pages_newest_first_walk_back_from_the_last_event(queue: Any) -> None:
    item_id = chatty_item(queue, 23)
    whole = queue.history(item_id)
    newest = [queue.history(item_id, limit=10, start=s, newest_first=True) for s in (0, 10, 20)]
    assert [len(p) for p in newest] == [10, 10, 5]
    assert [e for page in newest for e in page] == whole[::-1]
    assert str(newest[0][0].kind) == "completed"
    assert queue.history(item_id, limit=10, start=25, newest_first=True) == []


def test_history_paging_arguments_are_checked(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    for bad in ({"limit": 0}, {"limit": 1_001}, {"start": -1}, {"limit": True}):
        with pytest.raises(ValidationError):
            queue.history(item_id, **bad)
    with pytest.raises(ItemNotFound):
        queue.history(987_654, start=5)
