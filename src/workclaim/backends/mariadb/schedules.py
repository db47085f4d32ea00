"""Schedules on MariaDB: the stored rows and the conditional write that fires a slot.

A PLACEHOLDER until mdb-sched's module replaces this file (with migrations/0003_schedules.sql);
the functions and their signatures are the interface backend.py calls, the same as SQLite's
schedules.py: `fire` takes the slot with a conditional write and inserts the item through the
`insert` function enqueue uses (backend.py `insert_items`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from workclaim.backends.base import NewItem, NewSchedule
from workclaim.backends.mariadb.connection import Cursor
from workclaim.errors import BackendError
from workclaim.models import Schedule

# insert_items(cur, queue, items, now_us) -> ids: enqueue's own insert (backend.py).
Insert = Callable[[Cursor, str, Sequence[NewItem], int], list[int]]

_MISSING = "schedules on MariaDB are not built yet (mdb-sched)"


def get(cur: Cursor, name: str) -> Schedule | None:
    """The stored schedule `name`, or None. Placeholder: none."""
    return None


def every(cur: Cursor) -> list[Schedule]:
    """Every stored schedule, by name. Placeholder: none."""
    return []


def put(cur: Cursor, spec: NewSchedule, now_us: int) -> Schedule:
    """Create or replace (see `Scheduling.set_schedule`). Placeholder: refused."""
    raise BackendError(_MISSING)


def remove(cur: Cursor, name: str) -> bool:
    """Delete the schedule; True if it existed. Placeholder: none exists."""
    return False


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
    return None
