"""PostgreSQL stats from counters (migration 0009, issue 18): the queued count is kept by the
writers' own transactions, so it must equal a count of the rows after any mix of concurrent
writers, rolled-back enqueues, reaps, purges and the migration of a store that holds items."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import random
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration._pg import claim_params, connect
from tests.support.servers import postgres_url
from workclaim import LeaseLost, Queue, Settings
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.postgres.connection import parse_url
from workclaim.backends.postgres.schema import SCHEMA_VERSION
from workclaim.errors import InvalidState

QUEUES = ("a", "b")
PROCESSES = 4
ROUNDS = 60


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


def _schema(url: str) -> sql.Identifier:
    return sql.Identifier(parse_url(url)[1])


def counted(url: str, queue: str) -> dict[str, int]:
    """The truth: the queue's rows per status, and its expired leases, counted row by row."""
    with connect(url) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT status, count(*), count(*) FILTER (WHERE expires_at <= clock_timestamp())"
                " FROM {}.items WHERE queue = %s GROUP BY status"
            ).format(_schema(url)),
            (queue,),
        ).fetchall()
    truth = {status: int(n) for status, n, _ in rows}
    truth["expired"] = sum(int(e) for _, _, e in rows)
    return truth


def reported(q: Queue, queue: str) -> dict[str, int]:
    s = q.stats(queue)
    got = {
        "queued": s.queued,
        "claimed": s.claimed,
        "done": s.done,
        "dead": s.dead,
        "cancelled": s.cancelled,
    }
    got = {status: n for status, n in got.items() if n}
    got["expired"] = s.expired
    return got


def _churn(url: str, seed: int, start: Any) -> None:
    """One process: a random mix of every verb that moves items into or out of `queued`,
    including enqueues in its own transactions, half of them rolled back."""
    rng = random.Random(seed)
    worker = f"w{seed}"
    libpq_url = parse_url(url)[0]
    with Queue(url, settings=Settings(retention_seconds=0)) as q, psycopg.connect(libpq_url) as own:
        start.wait(60)
        held = []
        for n in range(ROUNDS):
            queue = rng.choice(QUEUES)
            action = rng.randrange(10)
            if action == 0:
                q.enqueue_many(queue, list(range(rng.randrange(1, 6))))
            elif action == 1:
                q.enqueue(queue, n, dedupe_key=f"k{rng.randrange(20)}")
            elif action == 2:
                q.enqueue_many(queue, [n, n], connection=own)
                if rng.random() < 0.5:
                    own.rollback()
                else:
                    own.commit()
            elif action == 3:
                # Short leases: some expire and are reaped by a later claim, queued or dead.
                held += q.claim(queue, worker=worker, lease_seconds=0.05, limit=2)
            elif action == 4:
                done = [(lease, None) for lease in held if lease.queue == queue]
                held = [lease for lease in held if lease.queue != queue]
                turn = q.complete_and_claim(done, queue, worker=worker, lease_seconds=0.05, limit=2)
                held += turn[1]
            elif action == 5 and held:
                q.enqueue(queue, n)
            lease = held.pop(rng.randrange(len(held))) if held and action >= 6 else None
            if lease is None:
                continue
            try:
                if action == 6:
                    q.complete(lease)
                elif action == 7:
                    q.release(lease)
                elif action == 8:
                    q.fail(lease, "boom", retry_delay=0.0)
                else:
                    q.fail(lease, "boom", retry=False)
                    if rng.random() < 0.5:
                        q.requeue(lease.id)
            except LeaseLost:
                pass  # it expired (and may have been reaped); the reap counted it
        for item in q.items(QUEUES[seed % 2], status="queued", limit=3):
            with contextlib.suppress(InvalidState):  # another process cancelled or claimed it
                q.cancel(item.id)
        for lease in held:
            with contextlib.suppress(LeaseLost):
                q.complete(lease)


@pytest.mark.timeout(300)
def test_stats_equal_the_rows_after_concurrent_writers_and_after_purge(url: str) -> None:
    """PROCESSES processes, each its own connections, enqueue (in batches, with dedupe keys, in
    their own transactions, some rolled back), claim with leases that expire and get reaped,
    complete, release, retry, kill, requeue and cancel, all at once; then stats must equal a
    row-by-row count of every status, before and after the first fold, and after a purge."""
    with Queue(url) as q:
        for queue in QUEUES:
            q.enqueue_many(queue, list(range(50)))
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=_churn, args=(url, n, start)) for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(240)
        assert proc.exitcode == 0
    time.sleep(0.2)  # every lease left has expired: the expired counts cannot change below
    with connect(url) as conn:  # the writers left rows to fold: the first stats folds them
        unfolded = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.queued_added").format(_schema(url))
        ).fetchone()
    assert unfolded is not None and unfolded[0] > 0
    with Queue(url) as q:
        for queue in QUEUES:
            truth = counted(url, queue)
            assert {"queued", "done"} <= set(truth), truth  # the mix really moved items
            assert reported(q, queue) == truth
            assert reported(q, queue) == truth  # folded now: the same counts
        # A claim reaps the expired leases (back to queued, or dead) and takes one more.
        q.claim(list(QUEUES), worker="reaper", lease_seconds=0.05, limit=1)
        time.sleep(0.2)
        assert q.purge(QUEUES[0], older_than=0) > 0
        for queue in QUEUES:
            assert reported(q, queue) == counted(url, queue)


def _appended_rows(url: str) -> int:
    """How many appended rows `queued_added` holds (the retention pass folds them away)."""
    with connect(url) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.queued_added").format(_schema(url))
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_retention_pass_folds_what_enqueues_appended(url: str) -> None:
    with Queue(url) as q:
        for n in range(5):
            q.enqueue("a", n)
        q.backend.purge(None, older_than_seconds=3600)
        assert _appended_rows(url) == 0
        assert q.stats("a").queued == 5


def test_the_retention_pass_folds_more_queues_than_one_statement_does(url: str) -> None:
    """fold_queued moves at most 256 queues a statement (an advisory lock each, migration
    0010); the retention pass runs it until nothing is left."""
    with Queue(url) as q:
        with connect(url) as conn:  # one statement: an appended row per queue
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.items (queue, payload, status, priority, run_at, "
                    "max_attempts, created_at, updated_at) "
                    "SELECT 'q' || n, '{{}}', 'queued', 0, now(), 3, now(), now() "
                    "FROM generate_series(1, 600) AS n"
                ).format(_schema(url))
            )
        q.backend.purge(None, older_than_seconds=3600)
        assert _appended_rows(url) == 0
        assert q.stats("q600").queued == 1


def test_an_upgraded_store_counts_the_items_it_held(url: str) -> None:
    """Migration 0009 counts the queued items already there, per queue."""
    backend = PostgresBackend(url, Settings(auto_migrate=False))
    try:
        backend.migrate_to(8)  # the version before 0009
        with connect(url) as conn:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.items (queue, payload, status, priority, run_at, "
                    "max_attempts, created_at, updated_at) "
                    "SELECT 'q' || (n % 3), '{{}}', CASE WHEN n % 4 = 0 THEN 'cancelled' "
                    "ELSE 'queued' END, 0, now(), 3, now(), now() "
                    "FROM generate_series(1, 100) AS n"
                ).format(_schema(url))
            )
        backend.migrate_to(SCHEMA_VERSION)
    finally:
        backend.close()
    with Queue(url) as q:
        for queue in ("q0", "q1", "q2"):
            assert q.stats(queue).queued == counted(url, queue)["queued"]


def test_stats_count_rows_a_concurrent_fold_holds(url: str) -> None:
    """A fold in another open transaction holds the appended rows (locked, their move not yet
    committed): stats skips them in its own fold, neither waits nor misses them."""
    with Queue(url) as q:
        q.enqueue_many("a", [1, 2, 3])
        with connect(url) as other:  # a transaction left open by the with block until exit
            other.execute(q.backend._q["fold_queued"], {"queue": None})  # type: ignore[attr-defined]
            assert q.stats("a").queued == 3
            other.commit()
        assert q.stats("a").queued == 3


def test_an_enqueue_in_an_open_transaction_holds_no_lock_a_claimer_waits_for(url: str) -> None:
    """A caller's transaction that enqueued and stays open (transactional enqueue) must not
    stall claims, even from a server process of the same counter shard (pid % 64): inserts
    append rows to queued_added instead of updating a shared counter (migration 0009)."""
    with Queue(url) as q:
        q.enqueue_many("a", [1, 2])
        backend: Any = q.backend
        with connect(url) as producer:
            q.enqueue("a", "pending", connection=producer)  # not committed yet
            shard = producer.info.backend_pid % 64
            claimer = None
            for _ in range(1000):  # a server process of the same shard
                conn = connect(url)
                if conn.info.backend_pid % 64 == shard:
                    claimer = conn
                    break
                conn.close()
            assert claimer is not None
            with claimer:
                claimer.autocommit = True
                claimer.execute("SET lock_timeout = '5s'")  # a wait fails the test, not hangs
                params = claim_params(["a"], 5, worker="w", reap_limit=10)
                assert len(claimer.execute(backend._q["claim"], params).fetchall()) == 2
            assert q.stats("a").queued == 0  # the open enqueue is not counted yet
            producer.commit()
        assert q.stats("a").queued == 1
