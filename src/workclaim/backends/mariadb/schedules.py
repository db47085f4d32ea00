"""Schedules on MariaDB: the stored rows and the conditional write that fires a slot.

Each verb runs inside one of the backend's transactions (`MariadbBackend._write`). `fire` relies
on nothing it read before: one conditional UPDATE of the schedule's row (take_slot) decides, it
reads the latest committed row and holds the row's lock to commit, and only when it changed the
row does the item go in, through the very function `enqueue` uses (backend.py `insert_items`:
dedupe, history, group, flow control), in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from workclaim.backends import _rows as rows
from workclaim.backends._queryfile import load_queries
from workclaim.backends.base import NewItem, NewSchedule
from workclaim.backends.mariadb import listener, schema
from workclaim.backends.mariadb.connection import Cursor
from workclaim.models import Schedule

S = load_queries(schema.PACKAGE, "schedules.sql")

# The settings `set_schedule` compares (lock_schedule's columns, in its order).
_SETTINGS = (
    "queue",
    "cron",
    "timezone",
    "payload",
    "priority",
    "max_attempts",
    "grp",
    "catch_up",
    "enabled",
)

# insert_items(cur, queue, items, now_us) -> ids: enqueue's own insert (backend.py).
Insert = Callable[[Cursor, str, Sequence[NewItem], int], list[int]]


def get(cur: Cursor, name: str) -> Schedule | None:
    """The stored schedule `name`, or None."""
    cur.execute(S["get_schedule"], {"name": name})
    row = cur.fetchone()
    return None if row is None else rows.schedule(row)


def every(cur: Cursor) -> list[Schedule]:
    """Every stored schedule, by name."""
    cur.execute(S["list_schedules"])
    return [rows.schedule(row) for row in cur.fetchall()]


def put(cur: Cursor, spec: NewSchedule, now_us: int) -> Schedule:
    """Create or replace (see `Scheduling.set_schedule`); returns the row as now stored.

    The row is created if missing, then read under its lock; only a setting that differs (the
    exact text, compared here) replaces it with version + 1 and `set_at = now`. The change
    signal is bumped (an identical declaration too: a spurious wake-up costs a scheduler one
    read, and whether the upsert created the row is not told apart under FOUND_ROWS)."""
    params = {
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
    }
    cur.execute(S["create_schedule"], params)
    cur.execute(S["lock_schedule"], {"name": spec.name})
    stored = cur.fetchone()
    assert stored is not None  # created or found just now, and locked since
    if tuple(stored) != tuple(params[key] for key in _SETTINGS):
        cur.execute(S["replace_schedule"], params)
    listener.bump(cur)  # other processes' schedulers: a next slot may have moved
    found = get(cur, spec.name)
    assert found is not None
    return found


def remove(cur: Cursor, name: str) -> bool:
    """Delete the schedule; True if it existed (then other processes' schedulers wake)."""
    existed = cur.execute(S["remove_schedule"], {"name": name}) > 0
    if existed:
        listener.bump(cur)
    return existed


def fire(
    cur: Cursor,
    insert: Insert,
    name: str,
    version: int,
    slot_us: int,
    item: NewItem,
    now_us: int,
) -> int | None:
    """Take the slot and enqueue its item (see `Scheduling.fire_schedule`); None: refused."""
    params = {"name": name, "version": version, "slot": slot_us, "now": now_us}
    if cur.execute(S["take_slot"], params) != 1:
        return None
    cur.execute(S["slot_queue"], {"name": name})
    (queue,) = cur.fetchone()
    item_id = insert(cur, str(queue), [item], now_us)[0]
    cur.execute(S["record_item"], {"name": name, "item_id": item_id})
    return item_id
