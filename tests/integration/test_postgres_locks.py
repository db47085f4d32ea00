"""PostgreSQL calls that wait for row locks: what they answer once the holder commits, and the
order in which they lock the `finished_counts` rows (one order everywhere, so no deadlock).

Each test holds a lock from a raw psycopg transaction, starts the call on a thread with a
connection of its own, waits until `pg_stat_activity` shows that call waiting for a lock, and
only then looks or lets go: deterministic, no sleeps.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from tests.integration._pg import connect
from tests.support.servers import postgres_url, with_query
from workclaim import LeaseLost, Queue, Settings
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.postgres.connection import parse_url
from workclaim.models import Lease

# Generous: only bounds a wait that would otherwise hang; no statement here should time out.
PATIENT = Settings(timeout=60, retention_seconds=0)
BLOCKED_WITHIN = 30.0


@pytest.fixture
def own_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """This test's schema, and an application_name that names only this test's connections."""
    name = f"wc_locks_{secrets.token_hex(4)}"
    return with_query(postgres_url(request, tmp_path), application_name=name, pool_size="1")


@pytest.fixture
def holder(own_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A raw connection that holds locks in an open transaction until the test lets go."""
    with connect(own_url) as conn:
        yield conn


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """One thread for the call that will wait for a lock."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


def _table(url: str, table: str) -> sql.Composed:
    """A table of the URL's schema, qualified."""
    return sql.SQL("{}.{}").format(sql.Identifier(parse_url(url)[1]), sql.Identifier(table))


def _application_name(url: str) -> str:
    return parse_qs(urlsplit(url).query)["application_name"][0]


def _pool_pid(url: str, holder: psycopg.Connection[Any]) -> int:
    """The server process of the queue's one pooled connection (pool_size=1). A connection
    closed just before (the queue's first, direct one) may linger a moment: wait it out."""
    deadline = time.monotonic() + BLOCKED_WITHIN
    with connect(url) as probe:
        probe.autocommit = True
        while True:
            rows = probe.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "AND pid NOT IN (pg_backend_pid(), %s)",
                (_application_name(url), holder.info.backend_pid),
            ).fetchall()
            if len(rows) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
    assert len(rows) == 1, rows
    return int(rows[0][0])


def _wait_until_blocked(url: str, pid: int, call: Future[Any]) -> None:
    """Return once server process `pid` waits for a lock (fail if `call` ended first)."""
    deadline = time.monotonic() + BLOCKED_WITHIN
    with connect(url) as probe:
        probe.autocommit = True
        while time.monotonic() < deadline:
            row = probe.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row is not None and row[0] == "Lock":
                return
            if call.done():
                call.result()  # raises what the call raised
                pytest.fail("the call finished without waiting for the lock")
            time.sleep(0.01)
    pytest.fail(f"process {pid} never waited for a lock")


def _complete_in_open_transaction(q: Queue, conn: psycopg.Connection[Any], lease: Lease) -> None:
    """Run workclaim's own `complete` statement for `lease` in `conn`'s open transaction."""
    backend = cast(PostgresBackend, q.backend)
    params = {"id": lease.id, "token": lease.token, "worker": lease.worker, "now": None}
    params |= {"result": None, "channel": backend.channel}
    row = conn.execute(backend._q["complete"], params).fetchone()
    assert row is not None


def _finish_with(q: Queue, verb: str, lease: Lease) -> Callable[[], list[Lease]]:
    """The call under test: `complete`, or the fused turn completing only `lease`; both return
    the leases refused as lost."""
    if verb == "complete":

        def complete() -> list[Lease]:
            try:
                q.complete(lease)
            except LeaseLost:
                return [lease]
            return []

        return complete

    def fused() -> list[Lease]:
        lost, leases = q.complete_and_claim([lease], "jobs", worker=lease.worker, limit=0)
        assert leases == []
        return lost

    return fused


@pytest.mark.timeout(90)
@pytest.mark.parametrize("verb", ["complete", "complete_and_claim"])
def test_a_completion_committed_while_the_call_waits_counts_as_done(
    own_url: str, holder: psycopg.Connection[Any], pool: ThreadPoolExecutor, verb: str
) -> None:
    """A retried completion (the worker runtime resends one after BackendUnavailable) that waits
    on the row lock of its own first try: once that commits, the item is done under this lease,
    so the retry is a repeat of the call that ended it, not a lost lease."""
    with Queue(own_url, settings=PATIENT) as q:
        q.enqueue("jobs", 1)
        [lease] = q.claim("jobs", worker="w", lease_seconds=600)
        pid = _pool_pid(own_url, holder)
        _complete_in_open_transaction(q, holder, lease)  # the first try, not yet committed
        call = pool.submit(_finish_with(q, verb, lease))
        _wait_until_blocked(own_url, pid, call)
        holder.commit()
        assert call.result(timeout=BLOCKED_WITHIN) == []
        item = q.get(lease.id)
        assert item is not None and item.status == "done"
        assert q.stats("jobs").done == 1  # counted once, by the first try


def _finished_and_expired(q: Queue) -> tuple[Lease, int]:
    """In queue `jobs`: a done item and a dead one (so the pool connection's shard has both
    counter rows), an expired lease with no attempt left (the next reap makes it dead) and a
    live lease, which it returns with the expired item's id."""
    q.enqueue("jobs", 1)
    [lease] = q.claim("jobs", worker="w")
    q.complete(lease)
    q.enqueue("jobs", 2)
    [lease] = q.claim("jobs", worker="w")
    q.fail(lease, "boom", retry=False)
    q.enqueue("jobs", 3)
    [live] = q.claim("jobs", worker="w", lease_seconds=600)
    past = q.backend.store_now() - timedelta(hours=1)
    expired = q.enqueue("jobs", 4, max_attempts=1, now=past)
    assert [lease.id for lease in q.claim("jobs", worker="w", lease_seconds=1, now=past)] == [
        expired
    ]
    return live, expired


def _lock_counter(conn: psycopg.Connection[Any], url: str, status: str, shard: int) -> bool:
    """Lock the `jobs` counter row of `status` on `shard` in `conn`'s transaction; False (and
    nothing locked) if another transaction holds it."""
    query = sql.SQL(
        "SELECT 1 FROM {} WHERE queue = 'jobs' AND status = %s AND shard = %s FOR UPDATE NOWAIT"
    ).format(_table(url, "finished_counts"))
    try:
        row = conn.execute(query, (status, shard)).fetchone()
    except pg_errors.LockNotAvailable:
        conn.rollback()
        return False
    assert row is not None, f"no {status} counter row on shard {shard}"
    return True


@pytest.mark.timeout(90)
@pytest.mark.parametrize("statement", ["purge", "complete_and_claim"])
def test_counter_rows_are_locked_done_before_dead(
    own_url: str, holder: psycopg.Connection[Any], pool: ThreadPoolExecutor, statement: str
) -> None:
    """Every statement that changes both a done and a dead counter row of one shard locks the
    done row first: held at the done row, it has not touched the dead row yet. (Purge locked
    dead first and complete_and_claim done first, so the two could deadlock on a shared shard,
    and a claim running retention failed with BackendUnavailable.)"""
    with Queue(own_url, settings=PATIENT) as q:
        live, expired = _finished_and_expired(q)
        item = q.get(expired)
        assert item is not None and item.status == "claimed"  # the fused turn's reap has work
        pid = _pool_pid(own_url, holder)
        shard = pid % 64
        assert _lock_counter(holder, own_url, "done", shard)
        call: Future[Any]
        if statement == "purge":
            call = pool.submit(q.purge, "jobs", older_than=0)
        else:
            call = pool.submit(q.complete_and_claim, [live], "jobs", worker="w", limit=1)
        _wait_until_blocked(own_url, pid, call)
        with connect(own_url) as probe:
            assert _lock_counter(probe, own_url, "dead", shard), (
                f"{statement} locked the dead counter row before the done row"
            )
            probe.rollback()
        holder.commit()
        outcome = call.result(timeout=BLOCKED_WITHIN)
        stats = q.stats("jobs")
        if statement == "purge":
            assert outcome == 2 and (stats.done, stats.dead) == (0, 0)
        else:  # both rows changed: the completion counted, the reap made the expired item dead
            assert outcome == ([], []) and (stats.done, stats.dead) == (2, 2)
            item = q.get(expired)
            assert item is not None and item.status == "dead"


@pytest.mark.timeout(90)
def test_a_failed_retention_purge_does_not_fail_the_claim(
    own_url: str, holder: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Automatic retention rides on a claim; when its purge fails (here: it waits for a counter
    row past the deadline) the claim still succeeds, and the failure is logged."""
    with Queue(own_url, settings=PATIENT) as q:
        past = q.backend.store_now() - timedelta(hours=1)
        old, waiting = q.enqueue_many("jobs", [1, 2], now=past)
        [lease] = q.claim("jobs", worker="w", lease_seconds=600, now=past)
        q.complete(lease, now=past)  # finished an hour ago: past a minute's retention
    hurried = Settings(timeout=2, retention_seconds=60)
    with Queue(own_url, settings=hurried) as q:
        shard = _pool_pid(own_url, holder) % 64
        holder.execute(  # the done counter row of the claim's shard, held open
            sql.SQL(
                "INSERT INTO {} AS f (queue, status, shard, n) VALUES ('jobs', 'done', %s, 0) "
                "ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n"
            ).format(_table(own_url, "finished_counts")),
            (shard,),
        )
        with caplog.at_level(logging.WARNING, logger="workclaim"):
            leases = q.claim("jobs", worker="w")  # retention's purge times out under it
        assert [x.id for x in leases] == [waiting]
        assert any("retention" in r.getMessage() for r in caplog.records), caplog.records
        holder.rollback()
        item = q.get(old)
        assert item is not None and item.status == "done"  # the failed purge changed nothing
        assert q.purge("jobs", older_than=60) == 1  # and the next one works
