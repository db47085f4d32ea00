"""Schedules on SQLite: the stored rows and the conditional write that fires a slot.

Each verb runs inside one of the backend's write transactions (SQLite has one writer at a time),
so `fire` reads nothing it then relies on outside its own transaction: the conditional update
of the schedule's row decides, and only when it matched does the item go in, through the very
function `enqueue` uses (backend.py `insert_items`: dedupe, history, group, flow control).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from workclaim.backends import _rows as rows
from workclaim.backends._queryfile import load_queries
from workclaim.backends.base import NewItem, NewSchedule
from workclaim.backends.sqlite import schema
from workclaim.models import Schedule

S = load_queries(schema.PACKAGE, "schedules.sql")

# insert_items(conn, queue, items, now_us) -> ids: enqueue's own insert (backend.py).
Insert = Callable[[sqlite3.Connection, str, Sequence[NewItem], int], list[int]]


def get(conn: sqlite3.Connection, name: str) -> Schedule | None:
    """The stored schedule `name`, or None."""
    row = conn.execute(S["get_schedule"], {"name": name}).fetchone()
    return None if row is None else rows.schedule(row)


def every(conn: sqlite3.Connection) -> list[Schedule]:
    """Every stored schedule, by name."""
    return [rows.schedule(row) for row in conn.execute(S["list_schedules"]).fetchall()]


def put(conn: sqlite3.Connection, spec: NewSchedule, now_us: int) -> Schedule:
    """Create or replace (see `Scheduling.set_schedule`); returns the row as now stored."""
    conn.execute(
        S["set_schedule"],
        {
            "name": spec.name,
            "queue": spec.queue,
            "cron": spec.cron,
            "timezone": spec.timezone,
            "payload": spec.payload,
            "priority": spec.priority,
            "max_attempts": spec.max_attempts,
            "grp": spec.group,
            "catch_up": spec.catch_up,
            "enabled": 1 if spec.enabled else 0,
            "now": now_us,
        },
    )
    stored = get(conn, spec.name)
    assert stored is not None  # written just now, in this transaction
    return stored


def remove(conn: sqlite3.Connection, name: str) -> bool:
    """Delete the schedule; True if it existed."""
    return bool(conn.execute(S["remove_schedule"], {"name": name}).fetchall())


def fire(
    conn: sqlite3.Connection,
    insert: Insert,
    name: str,
    version: int,
    slot_us: int,
    item: NewItem,
    now_us: int,
) -> int | None:
    """Take the slot and enqueue its item (see `Scheduling.fire_schedule`); None: refused."""
    taken = conn.execute(
        S["take_slot"], {"name": name, "version": version, "slot": slot_us, "now": now_us}
    ).fetchone()
    if taken is None:
        return None
    item_id = insert(conn, str(taken[0]), [item], now_us)[0]
    conn.execute(S["record_item"], {"name": name, "item_id": item_id})
    return item_id
