"""The one mapping from rows to workclaim values (`Item`, `Lease`, `HistoryEvent`, `Schedule`)
for the stores that keep times as integer microseconds since the epoch: SQLite and MariaDB.

Rows are plain tuples (the fastest the drivers give); each function names their columns by
unpacking them in the order both backends' `queries.sql` select them (the same columns, in the
same order, in both).
"""

from __future__ import annotations

import json
from typing import Any, cast

from workclaim._time import from_micros
from workclaim.models import CatchUp, EventKind, HistoryEvent, Item, Lease, Schedule, Status


def item(row: tuple[Any, ...]) -> Item:
    """An Item from a get_item / items_* row."""
    (
        item_id,
        queue,
        payload,
        status,
        priority,
        run_at,
        attempts,
        max_attempts,
        dedupe_key,
        worker,
        expires_at,
        last_error,
        result,
        created_at,
        updated_at,
        grp,
    ) = row
    return Item(
        item_id,
        queue,
        json.loads(payload),
        Status(status),
        priority,
        from_micros(run_at),
        attempts,
        max_attempts,
        dedupe_key,
        worker,
        None if expires_at is None else from_micros(expires_at),
        last_error,
        None if result is None else json.loads(result),
        from_micros(created_at),
        from_micros(updated_at),
        grp or None,
    )


def leases(rows: list[tuple[Any, ...]], worker: str, lease_seconds: float) -> list[Lease]:
    """Leases from claim rows (id, queue, payload, token, attempt, max_attempts, expires_at,
    created_at), in token order: tokens were given in claim order, RETURNING has none. The
    plain claim's rows are of the default group; flow-control claims add the group ('' for the
    default) before created_at."""
    if len(rows) > 1:
        rows.sort(key=lambda r: cast(int, r[3]))
    loads = json.loads
    if rows and len(rows[0]) > 8:
        return [
            Lease(
                i,
                q,
                loads(p),
                tok,
                att,
                most,
                from_micros(exp),
                worker,
                lease_seconds,
                grp or None,
                from_micros(created),
            )
            for i, q, p, tok, att, most, exp, grp, created in rows
        ]
    return [
        Lease(
            i,
            q,
            loads(p),
            tok,
            att,
            most,
            from_micros(exp),
            worker,
            lease_seconds,
            None,
            from_micros(created),
        )
        for i, q, p, tok, att, most, exp, created in rows
    ]


def event(row: tuple[Any, ...]) -> HistoryEvent:
    """A HistoryEvent from a history / history_newest row."""
    item_id, kind, at, attempt, status, token, worker, error = row
    return HistoryEvent(
        item_id, EventKind(kind), from_micros(at), attempt, Status(status), token, worker, error
    )


def schedule(row: tuple[Any, ...]) -> Schedule:
    """A Schedule from a get_schedule / list_schedules row (schedules.sql); `next_slot` is left
    None (`Queue` computes it)."""
    (
        name,
        queue,
        cron,
        payload,
        timezone,
        priority,
        max_attempts,
        grp,
        catch_up,
        enabled,
        version,
        set_at,
        last_slot,
        last_item_id,
    ) = row
    return Schedule(
        name=name,
        queue=queue,
        cron=cron,
        payload=json.loads(payload),
        timezone=timezone,
        priority=priority,
        max_attempts=max_attempts,
        group=grp,
        catch_up=CatchUp(catch_up),
        enabled=bool(enabled),
        version=version,
        set_at=from_micros(set_at),
        last_slot=None if last_slot is None else from_micros(last_slot),
        last_item_id=last_item_id,
    )
