"""MariaDB's set-based claim (workclaim_take): a claim never waits on another transaction's
completion in flight; after a concurrent run of several OS processes
claiming in batches and ending their leases every way, the stats counts equal a GROUP BY of the
items, every item's history is complete (events 1..n, one 'claimed' event per claim with that
claim's token and worker) and the tokens of every batch follow the claim order."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import MySQLdb
import pytest

from tests.support.servers import mariadb_url, with_query
from workclaim import Queue
from workclaim.errors import InvalidState

QUEUE = "mp"
ITEMS = 600
# A permutation of 0..ITEMS-1: claim order (priority first) is not enqueue (id) order.
STRIDE = 37


def priority_of(index: int) -> int:
    return (index * STRIDE) % ITEMS


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return mariadb_url(request, tmp_path)


def _work(url: str, name: str, out: str) -> None:
    """Claim in batches of 1, 7 and 25 until the queue holds nothing queued or claimed; end each
    lease by completing, failing (retried or dead) or releasing it. Writes every batch as
    [[id, token], ...] in the order the claim returned it."""
    batches: list[list[list[int]]] = []
    sizes = (1, 7, 25)
    with Queue(url) as q:
        turn = 0
        while True:
            leases = q.claim(QUEUE, worker=name, limit=sizes[turn % 3], lease_seconds=300)
            turn += 1
            if not leases:
                stats = q.stats(QUEUE)
                if stats.queued == 0 and stats.claimed == 0:
                    break
                continue
            batches.append([[lease.id, lease.token] for lease in leases])
            for lease in leases:
                pick = (lease.id * 31 + lease.token) % 20
                if pick < 12:
                    q.complete(lease, result={"by": name})
                elif pick < 15:
                    q.fail(lease, "again", retry_delay=0)
                elif pick < 17:
                    q.fail(lease, "fatal", retry=False)
                else:
                    q.release(lease)
    Path(out).write_text(json.dumps(batches))


def _rows(q: Queue, sql: str) -> list[tuple[Any, ...]]:
    from workclaim.backends.mariadb.backend import MariadbBackend

    backend = q.backend
    assert isinstance(backend, MariadbBackend)

    def look(cur: Any) -> list[tuple[Any, ...]]:
        cur.execute(sql)
        return list(cur.fetchall())

    return backend._read(look)


def test_counts_history_and_tokens_after_a_concurrent_run(url: str, tmp_path: Path) -> None:
    with Queue(url) as q:
        ids = [
            q.enqueue(QUEUE, {"i": i}, priority=priority_of(i), max_attempts=3)
            for i in range(ITEMS)
        ]
        priority = {item_id: priority_of(i) for i, item_id in enumerate(ids)}
        ctx = mp.get_context("spawn")
        outs = [tmp_path / f"w{n}.json" for n in range(4)]
        workers = [
            ctx.Process(target=_work, args=(url, f"w{n}", str(out))) for n, out in enumerate(outs)
        ]
        for w in workers:
            w.start()
        # Meanwhile: cancel every 13th item (those still queued; the others refuse).
        cancelled = 0
        for item_id in ids[::13]:
            try:
                q.cancel(item_id)
                cancelled += 1
            except InvalidState:
                pass
        for w in workers:
            w.join(timeout=600)
            assert w.exitcode == 0
        batches = [b for out in outs for b in json.loads(out.read_text())]

        # Counts: stats (the slot counts) against a GROUP BY of the rows themselves.
        grouped = dict(
            _rows(
                q,
                f"SELECT status, COUNT(*) FROM workclaim_items "
                f"WHERE queue = '{QUEUE}' GROUP BY status",
            )
        )
        stats = q.stats(QUEUE)
        assert {
            "queued": stats.queued,
            "claimed": stats.claimed,
            "done": stats.done,
            "dead": stats.dead,
            "cancelled": stats.cancelled,
        } == {s: int(grouped.get(s, 0)) for s in ("queued", "claimed", "done", "dead", "cancelled")}
        assert stats.queued == stats.claimed == 0
        assert stats.total == ITEMS
        assert stats.dead > 0 and stats.done > 0

        # Tokens: unique, and within each batch strictly increasing in claim order.
        tokens = [t for b in batches for _, t in b]
        assert len(tokens) == len(set(tokens))
        multi = [b for b in batches if len(b) > 1]
        assert multi, "no batch of more than one item was claimed"
        for batch in batches:
            by_token = sorted(batch, key=lambda pair: pair[1])
            order = [priority[item_id] for item_id, _ in by_token]
            assert order == sorted(order), (batch, order)

        # History: every item's events numbered 1..n, and one 'claimed' event per claim made,
        # carrying that claim's token.
        claims: dict[int, set[int]] = {}
        for batch in batches:
            for item_id, token in batch:
                claims.setdefault(item_id, set()).add(token)
        events = _rows(
            q, "SELECT item_id, seq, kind, token FROM workclaim_history ORDER BY item_id, seq"
        )
        seqs: dict[int, list[int]] = {}
        claimed: dict[int, list[int]] = {}
        kinds: Counter[str] = Counter()
        for item_id, seq, kind, token in events:
            seqs.setdefault(item_id, []).append(int(seq))
            kinds[kind] += 1
            if kind == "claimed":
                claimed.setdefault(item_id, []).append(int(token))
        last = dict(_rows(q, "SELECT id, event_seq FROM workclaim_items"))
        for item_id in ids:
            assert seqs.get(item_id, []) == list(range(1, int(last[item_id]) + 1)), item_id
            got = claimed.get(item_id, [])
            assert len(got) == len(set(got))
            assert set(got) == claims.get(item_id, set()), item_id
        assert kinds["claimed"] == len(tokens)
        assert kinds["cancelled"] == cancelled == stats.cancelled


def test_a_claim_never_waits_on_a_completion_in_flight(url: str) -> None:
    """A completion changes the lease's entry in the leases index; the claim's probe for expired
    leases walks that index and must read it without a lock (it once took S locks there, and
    concurrent fused turns deadlocked). With a 1 s lock wait deadline, a waiting claim fails."""
    with Queue(with_query(url, lock_wait_timeout="1")) as q:
        q.enqueue(QUEUE, {"n": 1}, priority=0)
        second = q.enqueue(QUEUE, {"n": 2}, priority=1)
        (lease,) = q.claim(QUEUE, worker="a", lease_seconds=300)
        parts = url.split("/")
        conn: Any = MySQLdb.connect(
            host="127.0.0.1", port=3306, user="root", database=parts[-1].split("?")[0]
        )
        try:
            cur = conn.cursor()
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute("START TRANSACTION")
            cur.execute(
                "UPDATE workclaim_items SET status = 'done', expires_at = NULL WHERE id = %s",
                (lease.id,),
            )
            got = q.claim(QUEUE, worker="b", lease_seconds=300)
            assert [g.id for g in got] == [second]
            # The fused turn's claim too (its own completions first, then the probe).
            q.enqueue(QUEUE, {"n": 3}, priority=2)
            done, more = q.backend.complete_and_claim(
                [(got[0], None)], [QUEUE], worker="b", lease_seconds=300, limit=1
            )
            assert done == [True] and len(more) == 1
        finally:
            conn.rollback()
            conn.close()


# -- a claim of several queues locks only what it takes -----------------------------------------
def _session(url: str, *, autocommit: bool = False) -> Any:
    """A MySQLdb session of the test's own on the URL's database."""
    parts = urlsplit(url)
    return MySQLdb.connect(
        host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
        database=parts.path.lstrip("/"), charset="utf8mb4", autocommit=autocommit,
    )  # fmt: skip


def _claim_several(url: str, out: str) -> None:
    """In a process of its own: claim one item of queues a and b; write the ids taken."""
    with Queue(url) as q:
        leases = q.claim(["a", "b"], worker="x", limit=1, lease_seconds=300)
    Path(out).write_text(json.dumps([lease.id for lease in leases]))


def _wait_for_lock_wait(conn: Any) -> None:
    """Until some transaction of the server waits on a row lock (the claim, stopped in its
    UPDATE): a condition, polled; 60 s is only the give-up point. InnoDB refreshes what
    innodb_trx shows only when nobody read it for 0.1 s: poll slower than that."""
    deadline = time.monotonic() + 60
    cur = conn.cursor()
    while time.monotonic() < deadline:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
        )
        if cur.fetchone()[0]:
            return
        time.sleep(0.25)
    cur.execute("SELECT trx_state, trx_query FROM information_schema.innodb_trx")
    pytest.fail(f"the claim never reached its lock wait: {cur.fetchall()}")


@pytest.mark.timeout(120)
def test_a_claim_of_several_queues_locks_no_row_it_does_not_take(url: str, tmp_path: Path) -> None:
    """Process X claims one item of [a, b] and is stopped inside its transaction, after it
    locked what it takes (a1, the better item) and before its commit: a session of the test
    holds an uncommitted history row (a1, 1), which X's claim of a1 must insert too. Meanwhile
    a claim of b alone gets b1: X did not lock b1 (locking `limit` rows of every queue did, and
    the claim of b then found nothing although nobody took b1)."""
    url = with_query(url, lock_wait_timeout="60")
    with Queue(url) as q:
        a1 = q.enqueue("a", "a1", priority=0)
        b1 = q.enqueue("b", "b1", priority=1)
        blocker = _session(url)
        watcher = _session(url, autocommit=True)
        out = tmp_path / "x.json"
        x = mp.get_context("spawn").Process(target=_claim_several, args=(url, str(out)))
        try:
            blocker.cursor().execute(
                "INSERT INTO workclaim_history (item_id, seq, kind, at, attempt, status) "
                "VALUES (%s, 1, 'claimed', 0, 1, 'claimed')",
                (a1,),
            )
            x.start()
            _wait_for_lock_wait(watcher)
            got = q.claim("b", worker="y", limit=1, lease_seconds=300)
            assert [lease.id for lease in got] == [b1]
        finally:
            blocker.rollback()
            blocker.close()
            watcher.close()
            x.join(timeout=60)
        assert x.exitcode == 0
        assert json.loads(out.read_text()) == [a1]
        assert (q.get(a1).worker, q.get(b1).worker) == ("x", "y")


def test_a_queue_whose_items_others_hold_leaves_the_claim_to_the_other_queues(url: str) -> None:
    """The lock-free look says a1 is the best item, but another claim holds it: the claim of
    [a, b] takes b1 instead of returning nothing (a's unlocked rows are spent, b gets the rest),
    and a claim of several queues never takes more than its limit."""
    with Queue(url) as q:
        a1 = q.enqueue("a", "a1", priority=0)
        b = q.enqueue_many("b", ["b1", "b2", "b3"], priority=1)
        holder = _session(url)
        try:
            cur = holder.cursor()
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute("SELECT id FROM workclaim_items WHERE id = %s FOR UPDATE", (a1,))
            got = q.claim(["a", "b"], worker="w", limit=2, lease_seconds=300)
            assert [lease.id for lease in got] == b[:2]
            _, more = q.backend.complete_and_claim(
                [], ["a", "b"], worker="w", lease_seconds=300, limit=1
            )
            assert [lease.id for lease in more] == b[2:]
        finally:
            holder.rollback()
            holder.close()
        assert [lease.id for lease in q.claim(["b", "a"], worker="w", limit=5)] == [a1]
