"""PostgreSQL claims while another session holds an old snapshot (issue 18).

A long report, a forgotten `idle in transaction` session or a standby's feedback keeps every row
version newer than its snapshot: vacuum removes none of them, and no index scan may mark their
entries dead. A claim changes its items' status and a completion changes it again, so the
entries of every item claimed (in `items_claimable`) and completed (in `items_leases`) since
the snapshot began stay in the indexes the next claim walks: its cost grows with the items
processed while the snapshot is held (docs/postgres.md, "Under sustained load", has the long run
that found it: 40 ms and 262,000 heap fetches per claim after five minutes at 1,000 items/s).

Here ITEMS items are processed through the library while a snapshot is held, the scan floors
are raised (migration 0012), then a waiting claim's look for the next due time and one claim of
10 items are explained (`EXPLAIN (ANALYZE, BUFFERS)`, a function's statements included). A
claim that starts past the dead entries reads about as many buffers (about 150) whatever ITEMS
is; one that walks them reads about one more per fifty dead entries (here 20,000 in each of two
indexes: about 800 more), as schema version 11's did. The control (the same on a schema where
nothing was processed yet) shows the bounds are ones this server meets. (A `VACUUM` after
processing the items without a snapshot held would show the same, but only where no other
session of the database holds a snapshot: vacuum's horizon is the database's.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.integration._pg import claim_params, connect
from tests.support.servers import postgres_url
from workclaim import Queue
from workclaim.backends.postgres.backend import PostgresBackend

ITEMS = 20_000
BATCH = 500
# Buffers one claim of 10 may read. With nothing dead in its way it reads about 145 here (its
# items' rows and index entries, their history rows, the counters, the floors); after 20,000
# items under a held snapshot about 185 (schema version 12: it starts at the floors), where
# version 11 read about 950.
MOST_BUFFERS = 300
# Buffers a waiting claim's look for the next due time may read: about 3 with nothing dead in
# its way, about 13 after the 20,000 items under a held snapshot, where version 11's read
# about 520 (it walked the expired end of items_leases and the queue's entries from the start).
MOST_NEXT_DUE_BUFFERS = 60
BUFFERS = re.compile(r"Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?")


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


@contextmanager
def held_snapshot(url: str) -> Iterator[None]:
    """A session with an xid and a snapshot open for the block."""
    with connect(url) as conn:
        conn.execute("SELECT txid_current()")
        yield
        conn.rollback()


def process(q: Queue) -> None:
    """Enqueue, claim and complete ITEMS items in fused turns of BATCH, on a clock an hour
    back, so that every lease has expired on the real clock by the time it is explained (the
    reap check walks the expired end of `items_leases`)."""
    past = datetime.now(UTC) - timedelta(hours=1)
    for start in range(0, ITEMS, BATCH):
        q.enqueue_many("a", range(start, start + BATCH), now=past)
    lost, leases = q.complete_and_claim([], "a", worker="w", limit=BATCH, now=past)
    while leases:
        lost, leases = q.complete_and_claim(leases, "a", worker="w", limit=BATCH, now=past)
        assert lost == []


def buffers(url: str, query: str, params: dict[str, Any]) -> tuple[int, str]:
    """Shared buffers one run of `query` reads (the top plan node counts what its subplans and
    a function's statements read), and its plan. The second run of a session is the one
    measured: the first also reads the catalog to compile functions and plan statements."""
    with connect(url) as conn:
        conn.autocommit = True
        explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + query
        conn.execute(explain, params)
        rows = conn.execute(explain, params).fetchall()
    plan = "\n".join(row[0] for row in rows)
    hit, read = BUFFERS.search(plan).groups()  # type: ignore[union-attr]
    return int(hit or 0) + int(read or 0), plan


def claim_buffers(url: str, backend: PostgresBackend, floors: bool = True) -> int:
    """Buffers one claim of 10 items from `a` reads, the reap check included, starting at the
    floors or (`floors=False`, schema version 15) at the start of the order."""
    read, plan = buffers(url, backend._q["claim"], claim_params(["a"], 10, floors=floors))
    assert "rows=10 " in plan, plan
    return read


def next_due_buffers(url: str, backend: PostgresBackend) -> int:
    """Buffers a waiting claim's look for the next due time in `a` reads (its expired-lease
    check, the queue's next `run_at`, the next expiry)."""
    return buffers(url, backend._q["next_due"], {"queues": ["a"], "now": None})[0]


def raise_floors(url: str, backend: PostgresBackend) -> None:
    """Both partitions of floor_marks emptied, each after a walk (migration 0012): what the
    claimers' once-a-second raises do by the time the queue has moved on, here at once, so the
    claim measured starts at a floor that does not depend on how fast this machine processed
    the items."""
    with connect(url) as conn:
        conn.autocommit = True
        for old in (0, 1):
            query = sql.SQL("SELECT {}.raise_floors(%s)").format(sql.Identifier(backend.schema))
            raised = conn.execute(query, [old]).fetchone()
            assert raised == (True,)


def floors_wanted(url: str, backend: PostgresBackend) -> bool:
    """What the probe of schema version 15 answers now: whether claims should read the
    floors."""
    with connect(url) as conn:
        conn.autocommit = True
        query = sql.SQL("SELECT {}.floors_wanted(true)").format(sql.Identifier(backend.schema))
        return bool(conn.execute(query).fetchone()[0])  # type: ignore[index]


def run(url: str, hold: bool) -> dict[str, int]:
    """Buffers of a waiting claim's look, of one claim from the floors and of one from the
    start of the order, and whether the probe wants the floors: after ITEMS items were
    processed with a snapshot held throughout (explained while it is still held), or on a
    schema where nothing was processed yet."""
    with Queue(url) as q:
        q.migrate()
        backend = q.backend
        assert isinstance(backend, PostgresBackend)
        with held_snapshot(url) if hold else nullcontext():
            if hold:
                process(q)
            q.enqueue_many("a", range(40))  # four claims of 10 are explained
            raise_floors(url, backend)
            return {
                "wanted": floors_wanted(url, backend),
                "next_due": next_due_buffers(url, backend),
                "claim": claim_buffers(url, backend),
                "claim_without_floors": claim_buffers(url, backend, floors=False),
            }


def test_a_claim_reads_few_buffers_with_nothing_dead_in_its_way(url: str) -> None:
    """From the floors or not, a claim reads few buffers; the probe sees no reason for the
    floors, so claims skip reading them (schema version 15)."""
    read = run(url, hold=False)
    assert read["claim"] <= MOST_BUFFERS, read
    assert read["claim_without_floors"] <= MOST_BUFFERS, read
    assert read["next_due"] <= MOST_NEXT_DUE_BUFFERS, read
    assert read["wanted"] is False, read


def test_a_claim_reads_few_buffers_while_a_snapshot_is_held(url: str) -> None:
    """A claim from the floors reads few buffers; one from the start of the order walks the
    dead entries (version 11's claim did), which is what the probe sees: the floors are
    wanted."""
    read = run(url, hold=True)
    assert read["claim"] <= MOST_BUFFERS, read
    assert read["claim_without_floors"] > MOST_BUFFERS, read
    assert read["next_due"] <= MOST_NEXT_DUE_BUFFERS, read
    assert read["wanted"] is True, read
