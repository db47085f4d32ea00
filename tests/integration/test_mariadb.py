"""The MariaDB backend's own properties, on the test server: opening, sessions and their
deadlines, the pool across a fork and a killed session, deadlock retry, transactional enqueue
with a caller's MySQLdb connection, tokens across sessions, migrations, cheap stats, and wake-ups
across processes."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import MySQLdb
import pytest
from MySQLdb.connections import Connection

from tests.support import mariadbserver
from tests.support.servers import mariadb_url, with_query
from workclaim import Queue, Settings, Status, ValidationError
from workclaim.backends.base import NewItem
from workclaim.backends.mariadb.backend import MariadbBackend
from workclaim.backends.mariadb.connection import Cursor, session
from workclaim.backends.mariadb.schema import SCHEMA_VERSION
from workclaim.errors import BackendUnavailable, ConfigError, ItemNotFound, SchemaMismatch


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return mariadb_url(request, tmp_path)


@pytest.fixture
def q(url: str) -> Iterator[Queue]:
    with Queue(url) as queue:
        yield queue


def connect(url: str, **kwargs: Any) -> Connection:
    """A plain MySQLdb connection of the test's own to the URL's database."""
    parts = urlsplit(url)
    return MySQLdb.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=parts.path.lstrip("/"),
        **{"charset": "utf8mb4", **kwargs},
    )


def backend_of(q: Queue) -> MariadbBackend:
    backend = q.backend
    assert isinstance(backend, MariadbBackend)
    return backend


def one(q: Queue, sql: str) -> Any:
    """The first column of the first row of `sql`, run on one of the queue's pooled sessions."""

    def look(cur: Cursor) -> Any:
        cur.execute(sql)
        return cur.fetchone()[0]

    return backend_of(q)._read(look)


# -- opening ---------------------------------------------------------------------------------
def test_an_unknown_database_is_a_config_error_at_once(url: str) -> None:
    missing = mariadbserver.with_database(url, "wc_no_such_database_here")
    with pytest.raises(ConfigError, match="no such database"):
        Queue(missing)


def test_a_wrong_password_is_a_config_error(url: str) -> None:
    parts = urlsplit(url)
    wrong = parts._replace(netloc=f"wc_nobody:wrong@{parts.hostname}:{parts.port}").geturl()
    with pytest.raises(ConfigError, match="refused the URL's user or password"):
        Queue(wrong)


def test_mysql_scheme_opens_the_same_backend(url: str) -> None:
    with Queue("mysql" + url[len("mariadb") :]) as q:
        assert isinstance(q.backend, MariadbBackend)
        assert q.enqueue("jobs", 1) == 1


# -- sessions --------------------------------------------------------------------------------
def test_every_session_has_utc_and_the_urls_deadlines(url: str) -> None:
    with Queue(with_query(url, lock_wait_timeout="7"), settings=Settings(timeout=3)) as q:
        assert one(q, "SELECT @@session.time_zone") == "+00:00"
        assert int(one(q, "SELECT @@session.innodb_lock_wait_timeout")) == 7
        assert float(one(q, "SELECT @@session.max_statement_time")) == 3.0


def test_a_write_transaction_runs_read_committed(q: Queue) -> None:
    def level(cur: Cursor, _now_us: int) -> str:
        cur.execute("SELECT COUNT(*) FROM workclaim_items FOR UPDATE")  # make the trx visible
        cur.execute(
            "SELECT trx_isolation_level FROM information_schema.innodb_trx "
            "WHERE trx_mysql_thread_id = CONNECTION_ID()"
        )
        return str(cur.fetchone()[0])

    assert backend_of(q)._write(level) == "READ COMMITTED"


def test_a_killed_session_is_replaced_and_the_call_succeeds(url: str) -> None:
    with Queue(with_query(url, pool_size="1")) as q:
        q.enqueue("jobs", 1)
        session = one(q, "SELECT CONNECTION_ID()")
        with closing(connect(url, autocommit=True)) as admin, closing(admin.cursor()) as cur:
            cur.execute(f"KILL CONNECTION {int(session)}")
        assert q.stats("jobs").queued == 1  # a read on the replaced session
        assert one(q, "SELECT CONNECTION_ID()") != session


def _child_session(url: str, q: Queue, out: Any) -> None:
    out.send((one(q, "SELECT CONNECTION_ID()"), q.enqueue("jobs", "from the child")))


@pytest.mark.timeout(60)
def test_a_forked_child_never_uses_the_parents_sessions(url: str) -> None:
    with Queue(with_query(url, pool_size="1")) as q:
        parent_session = one(q, "SELECT CONNECTION_ID()")  # the pool's one idle session
        ctx = mp.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child_session, args=(url, q, send))
        child.start()
        child_session, child_item = receive.recv()
        child.join(30)
        assert child.exitcode == 0
        assert child_session != parent_session
        # The parent's session is still its own and alive.
        assert one(q, "SELECT CONNECTION_ID()") == parent_session
        assert q.get(child_item) is not None


def test_a_deadlock_rolls_back_and_runs_the_transaction_again(url: str) -> None:
    """Two writers lock two rows in opposite orders; MariaDB kills one (1213) and the runner
    runs that one's whole transaction again, so both finish and both changes are there."""
    with Queue(url) as q:
        first, second = q.enqueue_many("jobs", [1, 2])
        backend = backend_of(q)
        both_hold_one = threading.Barrier(2, timeout=20)
        runs = {"a": 0, "b": 0}

        def writer(name: str, ids: tuple[int, int]) -> Any:
            def txn(cur: Cursor, _now_us: int) -> None:
                runs[name] += 1
                cur.execute(
                    "UPDATE workclaim_items SET priority = priority + 1 WHERE id = %s", (ids[0],)
                )
                if runs[name] == 1:
                    both_hold_one.wait()
                cur.execute(
                    "UPDATE workclaim_items SET priority = priority + 1 WHERE id = %s", (ids[1],)
                )

            return lambda: backend._write(txn)

        errors: list[BaseException] = []

        def run(fn: Any) -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(writer("a", (first, second)),)),
            threading.Thread(target=run, args=(writer("b", (second, first)),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sorted(runs.values()) == [1, 2]  # the deadlock's victim ran twice
        for item_id in (first, second):
            item = q.get(item_id)
            assert item is not None and item.priority == 2


# -- transactional enqueue -------------------------------------------------------------------
def test_a_rolled_back_enqueue_leaves_no_item(q: Queue, url: str) -> None:
    with closing(connect(url)) as conn:
        item_id = q.enqueue("jobs", {"order": 1}, connection=conn)
        many = q.enqueue_many("jobs", [1, 2, 3], connection=conn)
        assert q.stats("jobs").total == 0  # not visible before the caller commits
        session(conn).rollback()
    assert q.stats("jobs").total == 0
    assert q.claim("jobs", worker="w1", limit=10) == []
    for gone in (item_id, *many):
        with pytest.raises(ItemNotFound):
            q.get(gone)


def test_a_committed_enqueue_exists_with_the_callers_rows(q: Queue, url: str) -> None:
    with closing(connect(url)) as conn, closing(conn.cursor()) as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY) ENGINE = InnoDB")
        cur.execute("INSERT INTO orders VALUES (7)")
        first = q.enqueue("jobs", {"order": 7}, dedupe_key="order-7", connection=conn)
        again = q.enqueue("jobs", {"order": 7}, dedupe_key="order-7", connection=conn)
        ids = q.enqueue_many("jobs", [{"n": 1}, {"n": 2}], priority=-1, connection=conn)
        assert again == first
        session(conn).commit()
        cur.execute("SELECT COUNT(*) FROM orders")
        assert cur.fetchone()[0] == 1
    leases = q.claim("jobs", worker="w1", limit=10)
    assert [lease.id for lease in leases] == [*ids, first]
    assert [lease.payload for lease in leases] == [{"n": 1}, {"n": 2}, {"order": 7}]


def test_an_autocommit_connection_enqueues_as_one_transaction(q: Queue, url: str) -> None:
    with closing(connect(url, autocommit=True)) as conn:
        ids = q.enqueue_many("jobs", ["a", "b"], connection=conn)
    assert [q.get(i).payload for i in ids] == ["a", "b"]


def test_a_connection_that_is_not_mysqldb_or_not_utf8mb4_is_refused(q: Queue, url: str) -> None:
    with pytest.raises(ValidationError, match="MySQLdb"):
        q.enqueue("jobs", 1, connection=object())
    with (
        closing(connect(url, charset="latin1")) as conn,
        pytest.raises(ValidationError, match="utf8mb4"),
    ):
        q.enqueue("jobs", 1, connection=conn)


# -- tokens ----------------------------------------------------------------------------------
def test_tokens_grow_across_sessions_and_backends(url: str) -> None:
    """Two backends (separate pools, separate sessions) claim in turn: every token is greater
    than every token issued before it, whichever session issued it."""
    with Queue(url) as a, Queue(url) as b:
        a.enqueue_many("jobs", list(range(40)))
        tokens = []
        for turn in range(20):
            claimer = a if turn % 2 else b
            tokens += [lease.token for lease in claimer.claim("jobs", worker="w", limit=2)]
        assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens) == 40


# -- schema ----------------------------------------------------------------------------------
def test_a_database_without_the_tables_is_a_schema_mismatch(url: str) -> None:
    with pytest.raises(SchemaMismatch, match="no workclaim store here"):
        Queue(url, settings=Settings(auto_migrate=False)).stats("jobs")


def test_a_newer_schema_is_refused(url: str) -> None:
    with Queue(url) as q:
        q.enqueue("jobs", 1)
    with closing(connect(url, autocommit=True)) as conn, closing(conn.cursor()) as cur:
        cur.execute(
            "INSERT INTO workclaim_schema_version VALUES (%s, 'future.sql', UTC_TIMESTAMP(6))",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(
        SchemaMismatch,
        match=rf"version {SCHEMA_VERSION + 1}, newer than this workclaim understands",
    ):
        Queue(url, settings=Settings(auto_migrate=False)).backend.verify_schema()


def _migrate(url: str) -> None:
    backend = MariadbBackend(url, Settings())
    try:
        backend.migrate()
        backend.verify_schema()
    finally:
        backend.close()


@pytest.mark.timeout(120)
def test_processes_migrating_together_all_end_with_one_schema(url: str) -> None:
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_migrate, args=(url,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(100)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    with closing(connect(url)) as conn, closing(conn.cursor()) as cur:
        cur.execute("SELECT version FROM workclaim_schema_version ORDER BY version")
        assert [row[0] for row in cur.fetchall()] == list(range(1, SCHEMA_VERSION + 1))


# -- stats -----------------------------------------------------------------------------------
def _rows_read(q: Queue, call: Any) -> int:
    """InnoDB rows the session read during `call(cur)` (Handler_read_* of that session)."""

    def run(cur: Cursor) -> int:
        def reads() -> int:
            cur.execute("SHOW SESSION STATUS LIKE 'Handler_read%%'")
            return sum(int(value) for _, value in cur.fetchall())

        before = reads()
        call(cur)
        return reads() - before

    return backend_of(q)._read(run)


def test_stats_reads_no_finished_row(q: Queue, url: str) -> None:
    ids = q.enqueue_many("jobs", list(range(2000)))
    with closing(connect(url, autocommit=True)) as conn, closing(conn.cursor()) as cur:
        cur.execute(  # 2000 finished rows, the quick way (the trigger-kept counts still hold)
            "UPDATE workclaim_items SET status = 'done', finished_at = 0 WHERE id <= %s",
            (ids[-3],),
        )
    stats = q.stats("jobs")
    assert (stats.queued, stats.done) == (2, 1998)
    from workclaim.backends.mariadb.backend import Q

    read = _rows_read(q, lambda cur: cur.execute(Q["stats"], {"queue": "jobs", "now": 0}))
    assert read < 100  # the 2 queued rows, 0 claimed, and the count slots


# -- wake-ups --------------------------------------------------------------------------------
def _release_after_wait(url: str, waiting: Any) -> None:
    with Queue(url) as other:
        # A lease far longer than the wait: its expiry cannot be what ends the wait.
        lease = other.claim("jobs", worker="releaser", lease_seconds=600)[0]
        waiting.wait(60)
        other.release(lease)


@pytest.mark.timeout(120)
def test_another_processes_release_wakes_a_waiting_claim(q: Queue, url: str) -> None:
    """The only item is held by another process; our claim waits 60 s; that process releases
    it. The release's signal (the trigger's bump) must wake us: the item, not an empty claim
    after the full wait."""
    q.enqueue("jobs", "only")
    ctx = mp.get_context("spawn")
    waiting = ctx.Event()
    other = ctx.Process(target=_release_after_wait, args=(url, waiting))
    other.start()
    while q.stats("jobs").claimed == 0:
        assert other.is_alive()
        threading.Event().wait(0.05)
    wakeup = q.backend.wakeup()
    wait = wakeup.wait
    calls = 0
    woken: list[bool] = []

    def signalling_wait(generation: int, timeout: float) -> bool:
        # The first wait starts the poller, whose first reading (its baseline) wakes it; from
        # the second on, the poller has its baseline, so only the release's signal can wake us.
        nonlocal calls
        calls += 1
        if calls >= 2:
            waiting.set()
        woken.append(wait(generation, timeout))
        return woken[-1]

    wakeup.wait = signalling_wait  # type: ignore[method-assign]
    leases = q.claim("jobs", worker="waiter", wait=60)
    other.join(30)
    assert [lease.payload for lease in leases] == ["only"]
    assert woken and all(woken)  # every wait ended by a signal, none by its timeout
    assert q.get(leases[0].id).status is Status.CLAIMED


def test_purge_takes_the_history_and_the_counts_with_it(q: Queue, url: str) -> None:
    ids = q.enqueue_many("jobs", [1, 2, 3])
    for lease in q.claim("jobs", worker="w", limit=3):
        q.complete(lease)
    assert q.purge("jobs", older_than=0) == 3
    assert q.stats("jobs").total == 0 and q.queues() == []
    with closing(connect(url)) as conn, closing(conn.cursor()) as cur:
        cur.execute("SELECT COUNT(*) FROM workclaim_history WHERE item_id IN %s", (tuple(ids),))
        assert cur.fetchone()[0] == 0


def test_a_batch_larger_than_a_packet_goes_in_several_statements_ids_in_order(q: Queue) -> None:
    """20 payloads of almost 1 MiB (20 MiB, past max_allowed_packet's 16 MiB default) in one
    enqueue: ids in input order, one per item; the last item repeats the first's dedupe key,
    which went in an earlier statement of the same transaction, and gets its id."""
    big = json.dumps("x" * 1_000_000)
    items = [
        NewItem(f'{{"n": {n}, "pad": {big}}}', 0, 0.0, None, 5, "k" if n in (0, 19) else None)
        for n in range(20)
    ]
    ids = backend_of(q).enqueue("jobs", items)
    assert ids[19] == ids[0]
    assert ids[:19] == sorted(ids[:19]) and len(set(ids)) == 19
    assert [q.get(i).payload["n"] for i in ids[:19]] == list(range(19))
    assert q.stats("jobs").queued == 19


def test_the_fused_turn_refuses_an_expired_lease_and_still_claims(q: Queue) -> None:
    """complete_and_claim's one CALL: a lease past its expiry (on the given clock) is not
    completed (flag False) and the claim goes on, reaping it and leasing its item anew (it
    comes first in claim order); a current one completes."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    q.enqueue_many("jobs", ["a", "b", "c"], now=start)
    expired, current = q.claim("jobs", worker="w", lease_seconds=10, limit=2, now=start)
    current = q.heartbeat(current, extend=60, now=start + timedelta(seconds=5))
    later = start + timedelta(seconds=20)
    flags, taken = backend_of(q).complete_and_claim(
        [(expired, None), (current, '"ok"')],
        ["jobs"],
        worker="w",
        lease_seconds=10,
        limit=1,
        now=later,
    )
    assert flags == [False, True]
    assert [(lease.id, lease.attempt) for lease in taken] == [(expired.id, 2)]
    assert taken[0].token > current.token > expired.token
    done = q.get(current.id)
    assert done is not None and done.status is Status.DONE and done.result == "ok"


def test_bump_moves_the_change_signal_the_poller_watches(q: Queue) -> None:
    """`listener.bump` (for flow control and schedules) changes what the poller reads."""
    from workclaim.backends.mariadb.listener import bump

    backend = backend_of(q)
    before = _poll_reading(backend)
    backend._write(lambda cur, _now_us: bump(cur))
    assert _poll_reading(backend) != before


def _poll_reading(backend: MariadbBackend) -> tuple[int, int]:
    from workclaim.backends.mariadb.listener import _signal

    conn = backend._connect()
    try:
        return _signal(conn)
    finally:
        conn.close()


def test_a_lock_held_past_lock_wait_timeout_is_backend_unavailable(url: str) -> None:
    with Queue(with_query(url, lock_wait_timeout="1")) as q:
        item_id = q.enqueue("jobs", 1)
        with closing(connect(url)) as holder, closing(holder.cursor()) as cur:
            cur.execute("SELECT id FROM workclaim_items WHERE id = %s FOR UPDATE", (item_id,))
            with pytest.raises(BackendUnavailable, match="unavailable or timed out"):
                q.cancel(item_id)
            session(holder).rollback()
        q.cancel(item_id)  # the lock gone, the same call succeeds
        assert q.stats("jobs").cancelled == 1
