"""SQLite schema v2: migrating a v1 database, the per-queue counts behind `stats` and `queues`,
the history written by another process's reap, the `gate` URL option, and query plans that
never walk finished rows."""

from __future__ import annotations

import multiprocessing as mp
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workclaim import ConfigError, EventKind, Queue, Settings, Status
from workclaim.backends._queryfile import load_text
from workclaim.backends.sqlite.backend import _PACKAGE, Q
from workclaim.backends.sqlite.schema import SCHEMA_VERSION
from workclaim.backends.sqlite.schema import split_statements as _split_statements

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _v1_database(path: Path) -> None:
    """A database as workclaim's schema version 1 left it, with items in every status."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in _split_statements(load_text(_PACKAGE, "migrations/0001_initial.sql")):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    us = int(at(0).timestamp() * 1_000_000)
    rows = [
        ("a", "queued", None, None),
        ("a", "claimed", 7, us + 10**9),
        ("a", "done", None, None),
        ("a", "done", None, None),
        ("b", "dead", None, None),
        ("b", "cancelled", None, None),
    ]
    for queue, status, token, expires in rows:
        conn.execute(
            """INSERT INTO workclaim_items (queue, payload, status, priority, run_at, attempts,
                   max_attempts, token, worker, expires_at, lease_us, created_at, updated_at,
                   finished_at)
               VALUES (?, '{}', ?, 0, ?, ?, 3, ?, ?, ?, 1000000000, ?, ?, ?)""",
            (
                queue,
                status,
                us,
                1 if token else 0,
                token,
                "old" if token else None,
                expires,
                us,
                us,
                us if status in ("done", "dead", "cancelled") else None,
            ),
        )
    conn.execute("UPDATE workclaim_counters SET value = 7")
    conn.close()


def test_a_version_1_database_migrates_with_counts_and_history_on(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    _v1_database(path)
    with Queue(f"sqlite:///{path}") as q:
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert q.queues() == ["a", "b"]
        a, b = q.stats("a", now=at(1)), q.stats("b", now=at(1))
        assert (a.queued, a.claimed, a.done, a.dead, a.cancelled) == (1, 1, 2, 0, 0)
        assert (b.queued, b.claimed, b.done, b.dead, b.cancelled) == (0, 0, 0, 1, 1)
        # Items from before the migration keep history from now on, and tokens go on rising.
        assert q.history(1) == []
        [lease] = q.claim("a", worker="w", now=at(1))
        assert lease.id == 1 and lease.token == 8
        q.complete(lease, now=at(2))
        assert [e.kind for e in q.history(1)] == [EventKind.CLAIMED, EventKind.COMPLETED]
        assert [item.id for item in q.items("b", "dead")] == [5]


def _brute_force(path: Path, queue: str) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT status, count(*) FROM workclaim_items WHERE queue = ? GROUP BY status",
            (queue,),
        ).fetchall()
    finally:
        conn.close()
    return {status: n for status, n in rows}


def test_stats_counts_match_the_rows_through_every_transition(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    rng = random.Random(9)
    with Queue(f"sqlite:///{path}") as q:
        t = 0.0
        for _ in range(400):
            t += 1
            queue = rng.choice(["x", "y"])
            op = rng.random()
            if op < 0.3:
                q.enqueue_many(queue, [1] * rng.randint(1, 3), max_attempts=2, now=at(t))
            elif op < 0.6:
                for lease in q.claim(queue, worker="w", lease_seconds=3, limit=2, now=at(t)):
                    end = rng.random()
                    if end < 0.5:
                        q.complete(lease, now=at(t))
                    elif end < 0.7:
                        q.fail(lease, "no", retry=rng.random() < 0.5, now=at(t))
                    elif end < 0.8:
                        q.release(lease, now=at(t))
                    # else: left to expire, reaped by a later claim
            elif op < 0.7:
                for item in q.items(queue, "dead", limit=2):
                    q.requeue(item.id, now=at(t))
            elif op < 0.8:
                for item in q.items(queue, "queued", limit=1):
                    q.cancel(item.id, now=at(t))
            elif op < 0.85:
                q.backend.purge(queue, older_than_seconds=5, limit=3, now=at(t))
            for name in ("x", "y"):
                stats = q.stats(name, now=at(t))
                counted = {s.value: getattr(stats, s.value) for s in Status}
                expected = {s.value: _brute_force(path, name).get(s.value, 0) for s in Status}
                assert counted == expected
            assert q.queues() == sorted(n for n in ("x", "y") if q.stats(n, now=at(t)).total)


def _hold_and_vanish(url: str) -> None:
    """Another process claims with a short lease and exits without finishing."""
    with Queue(url) as q:
        q.claim("jobs", worker="vanished", lease_seconds=1, now=at(0))


def test_a_reap_by_another_process_is_recorded_with_the_expired_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with Queue(url) as q:
        item_id = q.enqueue("jobs", 1, max_attempts=2, now=at(0))
    child = mp.get_context("spawn").Process(target=_hold_and_vanish, args=(url,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    with Queue(url) as q:
        [lease] = q.claim("jobs", worker="w2", now=at(5))
        kinds = [(e.kind, e.worker, e.attempt) for e in q.history(item_id)]
    assert kinds == [
        (EventKind.CLAIMED, "vanished", 1),
        (EventKind.EXPIRED, "vanished", 1),
        (EventKind.CLAIMED, "w2", 2),
    ]
    assert lease.attempt == 2


def test_history_off_items_write_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    with Queue(f"sqlite:///{path}", settings=Settings(history=False)) as q:
        q.enqueue_many("jobs", [1, 2, 3])
        while leases := q.claim("jobs", worker="w", limit=2):
            lost, _ = q.complete_and_claim(leases, "jobs", worker="w", limit=0)
            assert lost == []
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM workclaim_history").fetchone()[0] == 0
    conn.close()


@pytest.mark.parametrize("gate", ["on", "off", "OFF"])
def test_the_gate_option(tmp_path: Path, gate: str) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}?gate={gate}") as q:
        q.enqueue("jobs", 1)
        q.complete(q.claim("jobs", worker="w")[0])
        assert q.stats("jobs").done == 1
    assert (tmp_path / "w.db-wclock").exists() == (gate == "on")


def test_a_bad_gate_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gate"):
        Queue(f"sqlite:///{tmp_path / 'w.db'}?gate=maybe")


@pytest.mark.parametrize(
    "name",
    ["stats", "queues", "items_queued", "items_claimed", "items_dead", "history", "history_newest"],
)
def test_dashboard_queries_never_scan_the_table(tmp_path: Path, name: str) -> None:
    """With finished rows present, the polled queries use an index or the counts, not a scan
    of workclaim_items (EXPLAIN QUERY PLAN, as SQLite would run them)."""
    path = tmp_path / "w.db"
    Queue(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    params = {"queue": "q", "now": 0, "after": 0, "limit": 10, "id": 1, "start": 0}
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + Q[name], params)]
    conn.close()
    assert not [
        step for step in plan if step.startswith("SCAN workclaim_items") and "INDEX" not in step
    ], plan


def test_a_new_database_gets_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    fresh, old = tmp_path / "fresh.db", tmp_path / "old.db"
    Queue(f"sqlite:///{fresh}").close()
    _v1_database(old)  # created at SQLite's default page size
    Queue(f"sqlite:///{old}").close()
    sizes = []
    for path in (fresh, old):
        conn = sqlite3.connect(path)
        sizes.append(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.close()
    assert sizes == [2048, 4096]
