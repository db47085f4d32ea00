"""The claims' scan floors (migration 0012) never hide a claimable item or an expired lease.

Each test drives the races that model/floor.pml checks, step by step on real connections: a
writer whose transaction is still open while the floors are raised, a claim in flight that
rolls back after the raise walked past its locked row, a heartbeat that shortens a lease below
the lease floor. The raises are called for each partition of floor_marks in turn (what the
claimers' once-a-period raises do as time passes), so no step depends on the clock. Each test
fails with the part of the protocol it names removed (see the mutant notes beside them).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration._pg import connect
from tests.support.servers import postgres_url
from workclaim import Queue, Settings
from workclaim.backends.base import NewItem
from workclaim.backends.postgres.backend import PostgresBackend


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


@pytest.fixture
def q(url: str) -> Any:
    with Queue(url) as queue:
        queue.migrate()
        yield queue


def schema_of(q: Queue) -> sql.Identifier:
    backend = q.backend
    assert isinstance(backend, PostgresBackend)
    return sql.Identifier(backend.schema)


def raise_both(q: Queue, conn: psycopg.Connection[Any]) -> list[bool]:
    """One raise per partition of floor_marks: whether each emptied its partition."""
    query = sql.SQL("SELECT {}.raise_floors(%s)").format(schema_of(q))
    return [bool(conn.execute(query, [old]).fetchone()[0]) for old in (0, 1)]  # type: ignore[index]


def floor_of(q: Queue, conn: psycopg.Connection[Any], queue: str) -> tuple[int, int]:
    """The (priority, id) a claim of `queue` starts from now."""
    query = sql.SQL("SELECT priority, id FROM {}.claim_floor(%s)").format(schema_of(q))
    row = conn.execute(query, [[queue]]).fetchone()
    assert row is not None
    return row[0], row[1]


def processed(q: Queue, n: int) -> None:
    """n items claimed and completed: the floor has somewhere to move to."""
    q.enqueue_many("a", range(n))
    for lease in q.claim("a", worker="w", limit=n):
        q.complete(lease)


def test_the_raise_moves_the_floor_to_the_first_queued_item(q: Queue, url: str) -> None:
    processed(q, 5)
    last = q.enqueue("a", "next")
    with connect(url) as conn:
        conn.autocommit = True
        assert raise_both(q, conn) == [True, True]
        assert floor_of(q, conn, "a") == (0, last)
        # Nothing queued: the floor is the top of the order, until a writer marks below it.
        q.complete(q.claim("a", worker="w")[0])
        assert raise_both(q, conn) == [True, True]
        assert floor_of(q, conn, "a")[0] == 2**31 - 1
        again = q.enqueue("a", "again")
        assert floor_of(q, conn, "a") == (0, again)
    assert [lease.id for lease in q.claim("a", worker="w")] == [again]


def test_an_item_enqueued_in_a_transaction_open_across_the_raise_is_claimed_first(
    q: Queue, url: str
) -> None:
    """The writer's mark keeps the floor below its item, which the raise's walk could not see
    (mutants that fail here: count_inserted without its marks; claims that read the marks of
    one partition only), and the raise of the partition the writer appended to gives up."""
    processed(q, 5)
    later = q.enqueue("a", "later", priority=5)
    with connect(url) as writer, connect(url) as raiser:
        raiser.autocommit = True
        urgent = q.enqueue("a", "urgent", priority=-1, connection=writer)
        assert sorted(raise_both(q, raiser)) == [False, True]
        writer.commit()
        assert floor_of(q, raiser, "a") == (-1, urgent)
        assert [lease.id for lease in q.claim("a", worker="w", limit=2)] == [urgent, later]


def test_an_item_a_claim_locked_and_gave_back_stays_above_the_floor(q: Queue, url: str) -> None:
    """The raise's walk counts rows that claims in flight hold locked (mutant: the walk with
    SKIP LOCKED sets the floor past the first item, which the claim then never sees)."""
    processed(q, 5)
    first, second = q.enqueue_many("a", ["first", "second"])
    with connect(url) as claimer, connect(url) as raiser:
        raiser.autocommit = True
        locked = sql.SQL("SELECT id FROM {}.items WHERE id = %s FOR UPDATE").format(schema_of(q))
        assert claimer.execute(locked, [first]).fetchone() == (first,)
        assert raise_both(q, raiser) == [True, True]
        claimer.rollback()
        assert floor_of(q, raiser, "a") == (0, first)
    assert [lease.id for lease in q.claim("a", worker="w", limit=2)] == [first, second]


def test_a_lease_shortened_below_the_lease_floor_is_reaped(q: Queue, url: str) -> None:
    """A heartbeat that brings an expiry forward marks it (mutant: the UPDATE trigger marks
    only queued rows), so the reap check starts below it."""
    long_id, short_id = q.enqueue_many("a", ["long", "short"])
    leases = {lease.id: lease for lease in q.claim("a", worker="w", limit=2, lease_seconds=600)}
    with connect(url) as raiser:
        raiser.autocommit = True
        assert raise_both(q, raiser) == [True, True]
        shortened = q.heartbeat(leases[short_id], extend=1)
    later = shortened.expires_at + timedelta(seconds=1)
    retaken = q.claim("a", worker="w2", now=later)
    assert [lease.id for lease in retaken] == [short_id]
    assert q.get(long_id).status == "claimed"


def lease_marks(q: Queue, conn: psycopg.Connection[Any]) -> int:
    """How many lease marks floor_marks holds now."""
    query = sql.SQL("SELECT count(*) FROM {}.floor_marks WHERE queue IS NULL")
    return int(conn.execute(query.format(schema_of(q))).fetchone()[0])  # type: ignore[index]


def test_a_lease_write_a_mark_covers_keeps_that_mark_until_it_commits(q: Queue, url: str) -> None:
    """A statement whose smallest expiry an existing lease mark covers appends none (schema
    version 14; version 13 fails here, it appends one) and keeps that mark's partition from
    being emptied until it ends: here an application's own UPDATE shortens a lease in a
    transaction left open while the floors are raised. The raise of the writer's partition
    gives up, and once the writer commits the reap finds the shortened lease (a lease floor
    raised past it, model/floor.pml's COVERED_UNLOCKED, would hide it)."""
    long_id, short_id = q.enqueue_many("a", ["long", "short"])
    q.claim("a", worker="w", limit=2, lease_seconds=600)
    schema = schema_of(q)
    with connect(url) as writer, connect(url) as raiser:
        raiser.autocommit = True
        assert raise_both(q, raiser) == [True, True]
        # A mark a second from now in both partitions: it covers the shortened lease below
        # whichever period of the server's clock the UPDATE runs in (a lower mark is always
        # safe: marks only ever lower the floor).
        raiser.execute(
            sql.SQL(
                "INSERT INTO {}.floor_marks (gen, expires_at) SELECT g, clock_timestamp() "
                "+ interval '1 second' FROM (VALUES (0), (1)) AS p (g)"
            ).format(schema)
        )
        before = lease_marks(q, raiser)
        shorten = sql.SQL(
            "UPDATE {}.items SET expires_at = clock_timestamp() + interval '5 seconds' "
            "WHERE id = %s RETURNING expires_at"
        ).format(schema)
        ((expires_at,),) = writer.execute(shorten, [short_id]).fetchall()
        # Covered: nothing appended. Counted by the writer, which sees its own insert, in a
        # savepoint rolled back, so the count's locks on the partitions go with it.
        writer.execute("SAVEPOINT look")
        assert lease_marks(q, writer) == before
        writer.execute("ROLLBACK TO SAVEPOINT look")
        assert sorted(raise_both(q, raiser)) == [False, True]
        writer.commit()
    later = expires_at + timedelta(seconds=1)
    assert [lease.id for lease in q.claim("a", worker="w2", now=later)] == [short_id]
    assert q.get(long_id).status == "claimed"


def test_a_store_with_queued_items_upgrades_to_floors_that_start_below_them(url: str) -> None:
    """Migration 0012 marks every queue with items queued at the start of its order, so the
    first raise walks it and no claim starts above what version 11 left queued."""
    backend = PostgresBackend(url, Settings())
    try:
        backend.migrate_to(11)
        first, urgent = (
            backend.enqueue("a", [NewItem('"x"', priority, 0.0, None, 3, None, True, None)])[0]
            for priority in (3, -3)
        )
        backend.migrate_to(12)
    finally:
        backend.close()
    with Queue(url) as q, connect(url) as conn:
        conn.autocommit = True
        assert floor_of(q, conn, "a")[0] == -(2**31)
        assert raise_both(q, conn) == [True, True]
        assert floor_of(q, conn, "a") == (-3, urgent)
        assert [lease.id for lease in q.claim("a", worker="w", limit=2)] == [urgent, first]
