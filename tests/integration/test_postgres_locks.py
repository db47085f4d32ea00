"""PostgreSQL calls that wait for row locks: what they answer once the holder commits, and the
order in which they lock the `finished_counts` rows (one order everywhere, so no deadlock).

Each test holds a lock from a raw psycopg transaction, starts the call on a thread with a
connection of its own, waits until `pg_stat_activity` shows that call waiting for a lock, and
only then looks or lets go: deterministic, no sleeps.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
from psycopg import sql

from tests.integration._pg import connect
from tests.support.servers import postgres_url, with_query
from workclaim import LeaseLost, Queue, Settings
from workclaim.backends.postgres.backend import PostgresBackend
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
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


def _schema_name(url: str) -> str:
    from workclaim.backends.postgres.backend import parse_url

    return parse_url(url)[1]


def _table(url: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(_schema_name(url)), sql.Identifier(table))


def _application_name(url: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query)["application_name"][0]


def _pool_pid(url: str, holder: psycopg.Connection[Any]) -> int:
    """The server process of the queue's one pooled connection (pool_size=1)."""
    with connect(url) as probe:
        rows = probe.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND pid NOT IN (pg_backend_pid(), %s)",
            (_application_name(url), holder.info.backend_pid),
        ).fetchall()
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
            threading.Event().wait(0.01)
    pytest.fail(f"process {pid} never waited for a lock")


def _complete_in_open_transaction(q: Queue, conn: psycopg.Connection[Any], lease: Lease) -> None:
    """Run workclaim's own `complete` statement for `lease` in `conn`'s open transaction."""
    backend = cast(PostgresBackend, q.backend)
    params = {"id": lease.id, "token": lease.token, "worker": lease.worker, "now": None}
    row = conn.execute(backend._q["complete"], {**params, "result": None}).fetchone()
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
        lost, leases = q.complete_and_claim([lease], "jobs", worker=lease.worker, max=0)
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
        [lease] = q.claim("jobs", worker="w", lease=600)
        pid = _pool_pid(own_url, holder)
        _complete_in_open_transaction(q, holder, lease)  # the first try, not yet committed
        call = pool.submit(_finish_with(q, verb, lease))
        _wait_until_blocked(own_url, pid, call)
        holder.commit()
        assert call.result(timeout=BLOCKED_WITHIN) == []
        item = q.get(lease.id)
        assert item is not None and item.status == "done"
        assert q.stats("jobs").done == 1  # counted once, by the first try
