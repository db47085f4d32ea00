"""SQLite schedules beyond the contract: a version 3 database upgrades in place (its items kept,
no schedules), the slot's conditional update finds the row by its primary key, and declaring,
removing and firing wake this process's waiters (a scheduler sleeping until its next slot), and
`AsyncQueue` has the schedule verbs too."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workclaim import AsyncQueue, Queue, ScheduleNotFound, Status
from workclaim._time import to_micros
from workclaim.backends._queryfile import load_text
from workclaim.backends.sqlite.backend import _PACKAGE
from workclaim.backends.sqlite.schedules import S
from workclaim.backends.sqlite.schema import SCHEMA_VERSION, split_statements

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _v3_database(path: Path) -> None:
    """A database as schema version 3 left it, with one queued item of queue `a`."""
    conn = sqlite3.connect(path, isolation_level=None)
    for name in ("0001_initial.sql", "0002_history.sql", "0003_flow_control.sql"):
        for statement in split_statements(load_text(_PACKAGE, f"migrations/{name}")):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    us = to_micros(T0)
    conn.execute(
        """INSERT INTO workclaim_items (queue, payload, status, priority, run_at, max_attempts,
               created_at, updated_at) VALUES ('a', '{"old": 1}', 'queued', 0, ?, 3, ?, ?)""",
        (us, us, us),
    )
    conn.close()


def test_a_version_3_database_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    _v3_database(path)
    with Queue(f"sqlite:///{path}") as q:
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 4
        assert SCHEMA_VERSION == 4
        assert q.schedules(now=T0) == []
        assert q.get(1).payload == {"old": 1}
        made = q.schedule("s", "a", "*/10 * * * *", now=T0)
        item_id = q.fire_slot(made, T0 + timedelta(minutes=10), now=T0 + timedelta(minutes=10))
        assert [item.id for item in q.items("a", Status.QUEUED)] == [1, item_id]


def test_a_slot_finds_its_schedule_by_the_primary_key(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}"):
        pass
    conn = sqlite3.connect(tmp_path / "w.db")
    params = {"name": "s", "version": 1, "slot": 1, "now": 1}
    plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + S["take_slot"], params))
    assert "USING PRIMARY KEY (name=?)" in plan, plan


def test_declaring_removing_and_firing_wake_the_waiters(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}") as q:
        wakeup = q.backend.wakeup()
        before = wakeup.generation()
        made = q.schedule("s", "a", "*/10 * * * *", now=T0)
        assert wakeup.generation() > before
        before = wakeup.generation()
        q.fire_slot(made, T0 + timedelta(minutes=10), now=T0 + timedelta(minutes=10))
        assert wakeup.generation() > before
        before = wakeup.generation()
        assert q.unschedule("s")
        assert wakeup.generation() > before


def test_the_async_queue_declares_reads_runs_and_removes(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncQueue(f"sqlite:///{tmp_path / 'w.db'}") as q:
            made = await q.schedule("s", "a", "@hourly", payload=[1], now=T0)
            assert (await q.get_schedule("s", now=T0)) == made
            assert (await q.schedules(now=T0)) == [made]
            item_id = await q.run_schedule_now("s", now=T0)
            assert (await q.get(item_id)).payload == [1]
            assert await q.unschedule("s")
            with pytest.raises(ScheduleNotFound):
                await q.get_schedule("s")

    asyncio.run(main())
