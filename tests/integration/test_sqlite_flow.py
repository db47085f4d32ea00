"""SQLite flow control (schema v3): upgrading a v2 database in place, the managed claim's query
plans and bounded walk, and many processes at a group with one free slot."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workclaim import Queue
from workclaim.backends._queryfile import load_text
from workclaim.backends.sqlite.backend import _PACKAGE
from workclaim.backends.sqlite.flow import F
from workclaim.backends.sqlite.schema import SCHEMA_VERSION, split_statements

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _v2_database(path: Path) -> None:
    """A database as schema version 2 left it: a queued item, a live lease (token 7, held by
    `old` until T0 + 1000 s) and a done item, all of queue `a`."""
    conn = sqlite3.connect(path, isolation_level=None)
    for name in ("0001_initial.sql", "0002_history.sql"):
        for statement in split_statements(load_text(_PACKAGE, f"migrations/{name}")):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    us = int(at(0).timestamp() * 1_000_000)
    for status, token, expires in [
        ("queued", None, None),
        ("claimed", 7, us + 10**9),
        ("done", 6, None),
    ]:
        conn.execute(
            """INSERT INTO workclaim_items (queue, payload, status, priority, run_at, attempts,
                   max_attempts, token, worker, expires_at, lease_us, created_at, updated_at)
               VALUES ('a', '{}', ?, 0, ?, ?, 3, ?, ?, ?, 1000000000, ?, ?)""",
            (status, us, 1 if token else 0, token, "old" if token else None, expires, us, us),
        )
    conn.execute("UPDATE workclaim_counters SET value = 7")
    conn.close()


def test_a_version_2_database_upgrades_in_place_into_the_default_group(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    _v2_database(path)
    with Queue(f"sqlite:///{path}") as q:
        version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION >= 3  # 3: flow control (later versions add more)
        q.backend.verify_schema()
        assert [q.get(i).group for i in (1, 2, 3)] == [None, None, None]
        assert q.policy("a").concurrency is None
        # The lease given before the upgrade and before any policy holds the only slot.
        q.set_policy("a", concurrency=1)
        assert q.claim("a", worker="w", limit=5, now=at(1)) == []
        [live] = q.live_leases_by_group("a", now=at(1))
        assert (live.group, live.live) == (None, 1)
        # Once it has expired, the old item is claimable again in its default group.
        [lease] = q.claim("a", worker="w", limit=5, now=at(2000))
        assert (lease.id, lease.group, lease.token) == (1, None, 8)
        # The default group was served before groups existed: a new group ranks first.
        q.set_policy("a")
        q.enqueue("a", "new", group="g", now=at(2001))
        leases = q.claim("a", worker="w", limit=5, now=at(2002))
        assert [(x.group, x.id) for x in leases] == [("g", 4), (None, 2)]


def test_the_managed_claims_queries_use_their_indexes(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Queue(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    params = {
        "queue": "q",
        "grp": "g",
        "now": 0,
        "since": 0,
        "served": 0,
        "page": 10,
        "priority": 0,
        "m": 5,
        "after": 0,
        "live": 1,
        "recent": 1,
    }
    uses = {
        "group_items": "workclaim_items_grouped",
        "group_has_work": "workclaim_items_live",
        "live_in_queue": "workclaim_items_live",
        "never_served": "workclaim_items_grouped",
        "walk_groups": "workclaim_groups_walk",
        "claims_in_queue": "workclaim_claims_queue",
        "next_priority": "workclaim_items_claimable",
    }
    for name, index in uses.items():
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + F[name], params))
        assert index in plan, (name, plan)
        # Only the never-served groups are sorted (by their first items: new groups).
        assert name == "never_served" or "TEMP B-TREE" not in plan, (name, plan)
    conn.close()


def test_a_claim_skips_groups_that_ran_dry(tmp_path: Path) -> None:
    """A group a claim finds without queued items leaves the served-order walk until an item
    of it is queued again: a claim pays for a dry group once, not on every claim after."""
    path = tmp_path / "w.db"

    def active() -> set[str]:
        conn = sqlite3.connect(path)
        try:
            sql = "SELECT grp FROM workclaim_groups WHERE queue = 'a' AND active = 1"
            return {row[0] for row in conn.execute(sql)}
        finally:
            conn.close()

    with Queue(f"sqlite:///{path}") as q:
        for n in range(50):
            q.enqueue("a", n, group=f"g{n}", now=at(0))
        for lease in q.claim("a", worker="w", limit=100, now=at(1)):
            q.complete(lease, now=at(1))
        assert len(active()) == 50  # their last items were taken: not yet seen dry
        q.enqueue("a", "again", group="g7", now=at(3))
        assert [x.group for x in q.claim("a", worker="w", limit=100, now=at(4))] == ["g7"]
        assert active() <= {"g7"}  # the walk met the others dry and dropped them
        q.enqueue("a", "more", group="g9", now=at(5))
        [lease] = q.claim("a", worker="w", now=at(6))
        q.release(lease, now=at(6))  # a group holding a lease stays in the walk
        assert "g9" in active()
        assert [x.group for x in q.claim("a", worker="w", now=at(7))] == ["g9"]


def test_a_requeued_item_brings_its_dry_group_back_into_the_walk(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}") as q:
        dead = q.enqueue("a", "x", group="d", max_attempts=1, now=at(0))
        [lease] = q.claim("a", worker="w", now=at(1))
        q.fail(lease, "boom", retry=False, now=at(1))
        q.enqueue("a", "y", group="e", now=at(2))
        [other] = q.claim("a", worker="w", limit=10, now=at(3))  # meets "d" dry
        assert other.group == "e"
        q.requeue(dead, now=at(4))
        assert [x.id for x in q.claim("a", worker="w", limit=10, now=at(5))] == [dead]


def _claim_at_the_slot(url: str, barrier: mp.synchronize.Barrier, out: mp.Queue[int]) -> None:
    with Queue(url) as q:
        barrier.wait()
        out.put(len(q.claim("jobs", worker="racer", limit=10, lease_seconds=600)))


@pytest.mark.parametrize("limit", ["group_concurrency", "concurrency"])
def test_many_processes_at_one_free_slot_take_exactly_one_item(tmp_path: Path, limit: str) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with Queue(url) as q:
        if limit == "concurrency":
            q.set_policy("jobs", concurrency=2)
        else:
            q.set_policy("jobs", group_concurrency=2)
        q.enqueue_many("jobs", list(range(50)), group="hot")
        [held] = q.claim("jobs", worker="holder", lease_seconds=600)
        assert held.group == "hot"
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_claim_at_the_slot, args=(url, barrier, out)) for _ in range(8)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    taken = sorted(out.get(timeout=10) for _ in procs)
    assert taken == [0] * 7 + [1]
    with Queue(url) as q:
        assert q.live_leases_by_group("jobs")[0].live == 2
