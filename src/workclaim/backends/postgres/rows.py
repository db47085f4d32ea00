"""The one mapping from PostgreSQL rows to workclaim values (`Item`, `Lease`, `HistoryEvent`,
`Schedule`).

Rows are plain tuples (psycopg's `class_row`/`dict_row` cost more per row); jsonb and
timestamptz columns arrive as Python values, so each function names the columns by unpacking
them in the order the queries in `queries.sql` select them and converts only the enums.
"""

from __future__ import annotations

from typing import Any

from workclaim.models import CatchUp, EventKind, HistoryEvent, Item, Lease, Schedule, Status


def item(row: tuple[Any, ...]) -> Item:
    """An Item from a get_item / list_items row: Item's fields in order, the group last (only
    the status is converted)."""
    item_id, queue, payload, status, *rest = row
    return Item(item_id, queue, payload, Status(status), *rest)


def leases(rows: list[tuple[Any, ...]], worker: str, lease_seconds: float) -> list[Lease]:
    """Leases from the claim function's rows (id, queue, payload, token, attempt, max_attempts,
    expires_at, group), in claim order (tokens follow it; RETURNING has no order)."""
    rows.sort(key=lambda r: r[3])
    return [
        Lease(i, q, payload, tok, att, most, exp, worker, lease_seconds, group)
        for i, q, payload, tok, att, most, exp, group in rows
    ]


def events(item_id: int, rows: list[tuple[Any, ...]]) -> list[HistoryEvent]:
    """History events from history / history_newest rows (kind, at, attempt, status, token,
    worker, error); a row without a kind says the item exists but the page is empty."""
    return [
        HistoryEvent(item_id, EventKind(kind), at, attempt, Status(status), token, worker, error)
        for kind, at, attempt, status, token, worker, error in rows
        if kind is not None
    ]


def schedule(row: tuple[Any, ...]) -> Schedule:
    """A Schedule from a get_schedule / list_schedules / set_schedule row: its fields in order,
    from `name` to `last_item_id` (the json payload decoded by psycopg); `next_slot` is left to
    `Queue`."""
    name, queue, cron, payload, timezone, priority, most, group, catch_up, enabled = row[:10]
    version, set_at, last_slot, last_item_id = row[10:14]
    return Schedule(
        name,
        queue,
        cron,
        payload,
        timezone,
        priority,
        most,
        group,
        CatchUp(catch_up),
        enabled,
        version,
        set_at,
        last_slot,
        last_item_id,
    )
