"""Transactional enqueue: items written through the caller's own psycopg transaction."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.integration._pg import connect
from tests.support.servers import postgres_url, sqlite_url
from workclaim import ItemNotFound, Queue, ValidationError


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


def test_a_rolled_back_enqueue_leaves_no_item(url: str) -> None:
    with Queue(url) as q, connect(url) as conn:
        item_id = q.enqueue("jobs", {"order": 1}, connection=conn)
        many = q.enqueue_many("jobs", [1, 2, 3], connection=conn)
        # Not visible to the queue's own connections before the caller commits.
        assert q.stats("jobs").total == 0
        conn.rollback()
        assert q.stats("jobs").total == 0
        assert q.claim("jobs", worker="w1", limit=10) == []
        for gone in (item_id, *many):
            with pytest.raises(ItemNotFound):
                q.get(gone)


def test_a_committed_enqueue_exists_with_the_callers_rows(url: str) -> None:
    with Queue(url) as q, connect(url) as conn:
        conn.execute("CREATE TEMP TABLE orders (id int)")
        conn.execute("INSERT INTO orders VALUES (7)")
        first = q.enqueue("jobs", {"order": 7}, dedupe_key="order-7", connection=conn)
        again = q.enqueue("jobs", {"order": 7}, dedupe_key="order-7", connection=conn)
        ids = q.enqueue_many("jobs", [{"n": 1}, {"n": 2}], priority=-1, connection=conn)
        assert again == first
        conn.commit()
        leases = q.claim("jobs", worker="w1", limit=10)
        assert [lease.id for lease in leases] == [*ids, first]
        assert [lease.payload for lease in leases] == [{"n": 1}, {"n": 2}, {"order": 7}]


@pytest.mark.timeout(60)
def test_the_callers_commit_wakes_a_waiter(url: str) -> None:
    with Queue(url) as q, connect(url) as conn:
        item_id = q.enqueue("jobs", "after commit", connection=conn)
        wakeup = q.backend.wakeup()
        stop = threading.Event()

        def commit_once_waiting() -> None:
            while wakeup.waiting == 0 and not stop.is_set():
                stop.wait(0.01)
            conn.commit()

        helper = threading.Thread(target=commit_once_waiting)
        helper.start()
        try:
            leases = q.claim("jobs", worker="w1", wait=600)
        finally:
            stop.set()
            helper.join()
        assert [lease.id for lease in leases] == [item_id]


def test_an_autocommit_connection_commits_the_batch_at_once(url: str) -> None:
    with Queue(url) as q, connect(url) as conn:
        conn.autocommit = True
        q.enqueue_many("jobs", [1, 2], connection=conn)
        assert q.stats("jobs").queued == 2


def test_a_connection_that_is_not_psycopg_is_refused(url: str) -> None:
    with Queue(url) as q, pytest.raises(ValidationError, match="psycopg"):
        q.enqueue("jobs", 1, connection=object())
    with Queue(url) as q:
        assert q.stats("jobs").total == 0


def test_other_backends_refuse_a_connection(
    url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with Queue(sqlite_url(request, tmp_path)) as q, connect(url) as conn:
        with pytest.raises(ValidationError, match="connection"):
            q.enqueue("jobs", 1, connection=conn)
        with pytest.raises(ValidationError, match="connection"):
            q.enqueue_many("jobs", [1], connection=conn)
        assert q.stats("jobs").total == 0
