"""Claims read the scan floors only while they pay (schema version 15, issue 18).

`floors_wanted` probes what a claim that does not read the floors would walk: the front of
`items_claimable` per queue and of `items_leases`, counted by the server's own statistics of the
probe's transaction. While a snapshot is held the entries of every item claimed since stay in
the way (each a heap fetch), and the floors are wanted; with nothing in the way they are not,
and claims skip the lock and read of `floor_marks` that version 14's claims paid every time. A
claim told not to read the floors takes no lock on them at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.integration._pg import claim_params, connect
from tests.support.servers import postgres_url
from workclaim import Queue
from workclaim.backends.postgres.backend import PostgresBackend

# Items processed before the probe: more than the probe's 1,000 entries once a held snapshot
# keeps all of them in the way, a handful of index pages once nothing does.
ITEMS = 2_000
BATCH = 100


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


@pytest.fixture
def q(url: str) -> Any:
    with Queue(url) as queue:
        queue.migrate()
        yield queue


def backend_of(q: Queue) -> PostgresBackend:
    backend = q.backend
    assert isinstance(backend, PostgresBackend)
    return backend


@contextmanager
def held_snapshot(url: str) -> Iterator[None]:
    """A session with an xid and a snapshot open for the block."""
    with connect(url) as conn:
        conn.execute("SELECT txid_current()")
        yield
        conn.rollback()


def process(q: Queue, n: int) -> None:
    """n items enqueued, claimed and completed in fused turns of BATCH."""
    q.enqueue_many("a", range(n))
    lost, leases = q.complete_and_claim([], "a", worker="w", limit=BATCH)
    while leases:
        lost, leases = q.complete_and_claim(leases, "a", worker="w", limit=BATCH)
        assert lost == []


def probe(q: Queue, url: str) -> bool:
    """floors_wanted, probing now whatever the period."""
    query = sql.SQL("SELECT {}.floors_wanted(true)").format(sql.Identifier(backend_of(q).schema))
    with connect(url) as conn:
        conn.autocommit = True
        return bool(conn.execute(query).fetchone()[0])  # type: ignore[index]


def ask(q: Queue) -> bool:
    """What the backend passes to its next claim when its period to ask has come."""
    backend = backend_of(q)
    backend._floors_due = 0.0
    return backend._keep_floors()


def test_the_floors_are_not_wanted_with_nothing_in_a_claims_way(q: Queue, url: str) -> None:
    """Without a snapshot held, the entries of processed items are dead to everyone: the
    probe's first walk marks them so, its second steps over a few pages of them (mutant: a
    probe that counts its first walk, which may be the first to pass them, says wanted)."""
    process(q, ITEMS)
    assert probe(q, url) is False
    assert ask(q) is False


def test_the_floors_are_wanted_while_a_snapshot_keeps_entries_in_a_claims_way(
    q: Queue, url: str
) -> None:
    """Every item processed under a held snapshot leaves entries nobody may remove or mark
    dead (mutant: a probe that never says wanted, which version 14's claims did not need)."""
    q.enqueue("a", "first")  # the queue is marked, so the probe walks it
    with held_snapshot(url):
        process(q, ITEMS)
        assert probe(q, url) is True
        # Wanted for the periods that follow, without another probe: every process asks.
        assert ask(q) is True


def test_the_backend_asks_once_a_period_and_starts_with_the_floors(q: Queue, url: str) -> None:
    """Until its first answer a backend's claims read the floors (always safe); it asks before
    a claim once its period has come."""
    backend = backend_of(q)
    assert backend._keep_floors() is True  # the first period has not passed
    process(q, 10)
    assert ask(q) is False
    assert backend._keep_floors() is False  # the answer, until the next period


def floor_reads(url: str, backend: PostgresBackend, floors: bool) -> int:
    """Scans of floor_marks' queue-key indexes by a claim of `a`, counted by the server in the
    claim's transaction (only a claim's read of its floors scans them; its trigger's lease
    mark looks at the lease index, and the raise is not called)."""
    with connect(url) as conn:
        conn.execute(backend._q["claim"], claim_params(["a"], 1, floors=floors)).fetchall()
        row = conn.execute(
            "SELECT coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid)), 0)"
            " FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indrelid"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname IN ('floor_marks_0', 'floor_marks_1')"
            " AND pg_get_indexdef(i.indexrelid) LIKE '%%(queue, priority, run_at, id)%%'",
            [backend.schema],
        ).fetchone()
        conn.rollback()
    assert row is not None
    return int(row[0])


def test_a_claim_reads_the_floors_only_when_told(q: Queue, url: str) -> None:
    """Told not to, a claim does not read its floors (mutant: the claim of version 14, which
    always did); told to, it does, and takes the items in order either way."""
    q.enqueue_many("a", ["x", "y"])
    backend = backend_of(q)
    assert floor_reads(url, backend, floors=False) == 0
    assert floor_reads(url, backend, floors=True) > 0
    assert [lease.payload for lease in q.claim("a", worker="w", limit=2)] == ["x", "y"]


def test_the_fused_turn_passes_the_answer_on(q: Queue, url: str) -> None:
    """complete_and_claim claims as claim does, with or without the floors."""
    first, second = q.enqueue_many("a", ["x", "y"])
    backend = backend_of(q)
    with connect(url) as conn:
        for floors in (False, True):
            params = claim_params(["a"], 1, floors=floors) | {
                "ids": [],
                "tokens": [],
                "workers": [],
                "results": [],
                "channel": backend.channel,
            }
            conn.execute(backend._q["complete_and_claim"], params).fetchall()
            conn.commit()
    assert {q.get(first).status, q.get(second).status} == {"claimed"}


def test_a_window_is_renewed_before_it_runs_out(q: Queue, url: str) -> None:
    """Near the end of a window the floors are wanted in, the next caller probes again and
    extends it, so no period goes by without them while they still pay (mutant: probing only
    once the window has run out, when every process asking meanwhile claimed without them)."""
    schema = sql.Identifier(backend_of(q).schema)
    q.enqueue("a", "first")
    with held_snapshot(url):
        process(q, ITEMS)
        with connect(url) as conn:
            conn.autocommit = True
            # A window with four periods left: inside the last five.
            ((until,),) = conn.execute(
                sql.SQL("SELECT setval('{}.floor_wanted', {}.floor_period() + 4)").format(
                    schema, schema
                )
            ).fetchall()
            assert ask(q) is True
            ((renewed,),) = conn.execute(
                sql.SQL("SELECT last_value FROM {}.floor_wanted").format(schema)
            ).fetchall()
    assert renewed > until


@contextmanager
def marks_locked(url: str, schema: str) -> Iterator[None]:
    """floor_marks locked against every reader for the block, as a raise's TRUNCATE of a
    partition does for a moment: a probe's walk waits there, standing in for one too long."""
    with connect(url) as conn:
        conn.execute(
            sql.SQL("LOCK TABLE {}.floor_marks IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(schema)
            )
        )
        yield
        conn.rollback()


def window_left(url: str, schema: str) -> int:
    """Periods left in the window the floors are wanted in (negative once it ran out)."""
    ident = sql.Identifier(schema)
    query = sql.SQL("SELECT s.last_value - {}.floor_period() FROM {}.floor_wanted AS s")
    with connect(url) as conn:
        return int(conn.execute(query.format(ident, ident)).fetchone()[0])  # type: ignore[index]


def test_a_probe_cut_short_by_its_budget_says_wanted_for_a_whole_window(q: Queue, url: str) -> None:
    """A probe that cannot finish its walks within the caller's statement timeout stops there
    and answers that the floors are wanted, for a full window, instead of failing the call
    (mutant: version 15's probe, whose walk under a long hold had no bound and which fails
    with the caller's timeout)."""
    schema = backend_of(q).schema
    q.enqueue("a", "first")
    query = sql.SQL("SELECT {}.floors_wanted(true)").format(sql.Identifier(schema))
    with marks_locked(url, schema), connect(url) as conn:
        conn.execute("SET LOCAL statement_timeout = '100ms'")
        ((wanted,),) = conn.execute(query).fetchall()
        conn.rollback()
    assert wanted is True
    assert window_left(url, schema) >= 29  # the window's 30 periods, less one that may pass


def test_the_backend_bounds_its_probe(q: Queue, url: str) -> None:
    """The backend's ask gives its probe a budget: with the walk held up it returns, with the
    floors wanted, instead of keeping a claim waiting (mutant: no budget, and the claim that
    asks waits for as long as the walk does)."""
    schema = backend_of(q).schema
    q.enqueue("a", "first")
    with marks_locked(url, schema):
        assert ask(q) is True
    assert window_left(url, schema) >= 29
    assert q.claim("a", worker="w", limit=1)[0].payload == "first"
