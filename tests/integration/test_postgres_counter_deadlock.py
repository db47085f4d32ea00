"""The queued counters (migration 0009) close no deadlock cycle (migration 0010).

Two connections of one counter shard (server pids equal modulo 64) run workclaim's own SQL
(the claim function, fold_queued), driven step by step in explicit transactions, so the lock
order of each scenario is forced, not hoped for; the backend's re-run of a deadlock's victim is
not involved (no `_call`). The call that must wait runs on a thread; the test goes on once
`pg_stat_activity` shows it waiting for a lock (or once it has finished: on version 10 it need
not wait). On version 9 every scenario is a deadlock, which PostgreSQL breaks after
`deadlock_timeout` (so the scenarios are real); on the current version none is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from tests.integration._pg import connect
from tests.support.servers import postgres_url
from workclaim import Settings
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.postgres.schema import SCHEMA_VERSION

BEFORE = 9  # the version whose counter updates waited
BLOCKED_WITHIN = 30.0  # only bounds a wait that would otherwise hang
PAST = datetime(2000, 1, 1, tzinfo=UTC)  # a claim "at" PAST leaves an expired lease
FLOORS_ARGUMENT = 15  # the schema version whose claim function takes `p_floors`

# fold_queued as version 9 shipped it (queries.sql of 0.5.0): its counter writes waited.
VERSION_9_FOLD = """
WITH moved AS (
    DELETE FROM {schema}.queued_added AS a
    WHERE a.id IN (SELECT id FROM {schema}.queued_added
                   WHERE %(queue)s::text IS NULL OR queue = %(queue)s::text
                   FOR UPDATE SKIP LOCKED)
    RETURNING a.queue, a.n
)
INSERT INTO {schema}.queued_counts AS c (queue, shard, n)
SELECT m.queue, pg_backend_pid() %% 64, sum(m.n) FROM moved AS m GROUP BY m.queue ORDER BY m.queue
ON CONFLICT (queue, shard) DO UPDATE SET n = c.n + excluded.n
"""

Step = Callable[[psycopg.Connection[Any]], Any]


class Store:
    """A schema at a given version, written and claimed through workclaim's own SQL."""

    def __init__(self, url: str, version: int, stack: ExitStack) -> None:
        backend = PostgresBackend(url, Settings(auto_migrate=False))
        stack.callback(backend.close)
        backend.migrate_to(version)
        self.url = url
        self.version = version
        self.q = backend._q
        self.schema = backend.schema
        self.channel = backend.channel
        self.admin = stack.enter_context(connect(url))
        self.admin.autocommit = True
        self.stack = stack

    def enqueue(self, queue: str, n: int) -> None:
        params = {
            "now": PAST,  # claimable at PAST too
            "queue": queue,
            "channel": self.channel,
            "payloads": ["1"] * n,
            "priorities": [0] * n,
            "run_ats": [None] * n,
            "delays": [timedelta(0)] * n,
            "max_attempts": [3] * n,
            "histories": [False] * n,
            "groups": [None] * n,
        }
        self.admin.execute(self.q["insert_many"], params)

    def manage(self, queue: str) -> None:
        """A concurrency limit: the queue's claims lock its policy row (claim_flow)."""
        self.admin.execute(self.q["ensure_groups"], {"queue": queue, "groups": [""]})
        limits = dict.fromkeys(
            ("concurrency", "group_concurrency", "rate_count", "rate_seconds"), None
        )
        limits |= {"group_rate_count": None, "group_rate_seconds": None}
        self.admin.execute(
            self.q["set_policy"],
            {"queue": queue, "channel": self.channel, **limits, "concurrency": 10},
        )

    def claim(self, queues: list[str], now: datetime | None = None) -> Step:
        """One call of the claim function (its reap, then its claim), on a given connection."""
        params = {
            "queues": queues,
            "worker": "w",
            "lease": timedelta(minutes=1),
            "limit": 1,
            "now": now,
            "reap_limit": 10,
            "floors": True,
        }
        query = self.q["claim"]
        if self.version < FLOORS_ARGUMENT:  # the claim function before it took `p_floors`
            query = query.replace(", %(floors)s::boolean)", ")")
            assert "floors" not in query
        return lambda conn: conn.execute(query, params).fetchall()

    def fold(self) -> Step:
        """fold_queued of every queue: version 9's statement on a version 9 store."""
        query = VERSION_9_FOLD.replace("{schema}", sql.Identifier(self.schema).as_string(None))
        text = query if self.version == BEFORE else self.q["fold_queued"]
        return lambda conn: conn.execute(text, {"queue": None})

    def same_shard_pair(self) -> tuple[psycopg.Connection[Any], psycopg.Connection[Any]]:
        """Two connections whose server processes share a counter shard (pid % 64)."""
        first = self.stack.enter_context(connect(self.url))
        for _ in range(1000):
            other = connect(self.url)
            if other.info.backend_pid % 64 == first.info.backend_pid % 64:
                return first, self.stack.enter_context(other)
            other.close()
        pytest.fail("no server process of the same shard in 1000 connections")

    def queued(self, queue: str) -> tuple[int, int]:
        """(queued items counted row by row, queued items the counters hold)."""
        s = sql.Identifier(self.schema)
        row = self.admin.execute(
            sql.SQL(
                "SELECT (SELECT count(*) FROM {s}.items WHERE queue = %(q)s AND status = 'queued'),"
                " (SELECT coalesce(sum(n), 0) FROM {s}.queued_counts WHERE queue = %(q)s)"
                " + (SELECT coalesce(sum(n), 0) FROM {s}.queued_added WHERE queue = %(q)s)"
            ).format(s=s),
            {"q": queue},
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def appended_decrements(self) -> int:
        """Rows of queued_added that count items leaving `queued` (only the triggers' fallback
        writes them; inserts append positive counts)."""
        query = sql.SQL("SELECT count(*) FROM {}.queued_added WHERE n < 0").format(
            sql.Identifier(self.schema)
        )
        row = self.admin.execute(query).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """One thread for the step that may wait for a lock."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


def _wait_until_blocked_or_done(url: str, pid: int, call: Future[Any]) -> None:
    """Return once server process `pid` waits for a lock, or once `call` has finished."""
    deadline = time.monotonic() + BLOCKED_WITHIN
    with connect(url) as probe:
        probe.autocommit = True
        while time.monotonic() < deadline and not call.done():
            row = probe.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row is not None and row[0] == "Lock":
                return
            time.sleep(0.01)
    if not call.done():
        pytest.fail(f"process {pid} neither finished nor waited for a lock")


def _interleave(
    store: Store,
    pool: ThreadPoolExecutor,
    first: list[Step],
    second: list[Step],
) -> list[BaseException]:
    """Connection A runs `first` in one transaction, all but its last step at once and the last
    on the thread; then connection B (same shard) runs `second` in one transaction, its last
    step once A's last step waits for a lock (or has finished). Both commit when they can.
    Returns the errors raised (a deadlock's victim raises DeadlockDetected)."""
    a, b = store.same_shard_pair()
    errors: list[BaseException] = []
    for step in first[:-1]:
        step(a)
    for step in second[:-1]:
        step(b)

    def last_of_a() -> None:
        first[-1](a)
        a.commit()

    call = pool.submit(last_of_a)
    _wait_until_blocked_or_done(store.url, a.info.backend_pid, call)
    try:
        second[-1](b)
        b.commit()
    except psycopg.Error as exc:
        errors.append(exc)
        b.rollback()
    try:
        call.result(timeout=BLOCKED_WITHIN)
    except psycopg.Error as exc:
        errors.append(exc)
        a.rollback()
    return errors


def _lock_policy(store: Store, queue: str) -> Step:
    """What claim_flow does first: the queue's policy row, locked."""
    table = sql.Identifier(store.schema, "policies")
    query = sql.SQL("SELECT FROM {} WHERE queue = %s FOR UPDATE").format(table)
    return lambda conn: conn.execute(query, (queue,))


def _scenario(store: Store, name: str) -> tuple[list[Step], list[Step], list[str]]:
    """The steps of connections A and B, and the queues whose counts to check after."""
    if name == "managed-reap-then-policy":
        # A: a claim of a managed queue that reaps an expired lease of it (the counter row of
        # the queue, of this shard), then waits for the policy row, which B holds; B then
        # claims an item of the queue, whose count needs that counter row (the CI deadlock).
        store.manage("m")
        store.enqueue("m", 2)
        assert len(store.claim(["m"], now=PAST)(store.admin)) == 1
        return [store.claim(["m"])], [_lock_policy(store, "m"), store.claim(["m"])], ["m"]
    if name == "reap-and-claim-two-queues":
        # B claims from y; A's claim reaps an expired lease of x, then claims from y; B (its
        # transaction still open, as a claim_flow's next priority round) then claims from x.
        # B's claims run before the lease expired (their reaps find nothing to take).
        store.enqueue("x", 2)
        store.enqueue("y", 2)
        assert len(store.claim(["x"], now=PAST)(store.admin)) == 1
        early = PAST + timedelta(seconds=30)
        b = [store.claim(["y"], now=early), store.claim(["x"], now=early)]
        return [store.claim(["y"])], b, ["x", "y"]
    assert name == "fold-against-claims"
    # B claimed from b (its transaction still open); the fold (A) moves the rows the enqueues
    # appended, a's then b's (queue order); B then claims from a.
    store.enqueue("a", 2)
    store.enqueue("b", 2)
    return [store.fold()], [store.claim(["b"]), store.claim(["a"])], ["a", "b"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "scenario", ["managed-reap-then-policy", "reap-and-claim-two-queues", "fold-against-claims"]
)
@pytest.mark.parametrize("current", [False, True], ids=["version-9", "current"])
def test_counter_updates_close_no_deadlock_cycle(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pool: ThreadPoolExecutor,
    scenario: str,
    current: bool,
) -> None:
    url = postgres_url(request, tmp_path)
    with ExitStack() as stack:
        store = Store(url, SCHEMA_VERSION if current else BEFORE, stack)
        first, second, queues = _scenario(store, scenario)
        errors = _interleave(store, pool, first, second)
        if not current:
            assert [type(e) for e in errors] == [pg_errors.DeadlockDetected], errors
            return
        assert errors == []
        if scenario != "fold-against-claims":  # the claim that met the held row appended
            assert store.appended_decrements() > 0
        for queue in queues:
            truth, counted = store.queued(queue)
            assert counted == truth, queue
