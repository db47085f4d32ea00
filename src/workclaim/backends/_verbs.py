"""The verb logic SQLite and MariaDB share around their SQL (`sqlite/backend.py`,
`mariadb/backend.py`): both keep times as integer microseconds and their `queries.sql` answer
the same columns, so what a verb makes of its parameters and rows is written once here. Each
backend keeps its statements and how it runs them (transactions, round trips, retries).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workclaim._time import seconds_to_micros, to_micros
from workclaim.backends.base import NewItem
from workclaim.errors import LeaseLost
from workclaim.models import Lease, QueueStats


def fence(lease: Lease) -> dict[str, Any]:
    """The parameters of a fenced write: the lease's item, token and worker."""
    return {"id": lease.id, "token": lease.token, "worker": lease.worker}


def micros_or_none(seconds: float | None) -> int | None:
    """An optional duration (an extension, a retry delay) in microseconds."""
    return None if seconds is None else seconds_to_micros(seconds)


def is_repeat(row: tuple[Any, ...] | None, lease: Lease, op: str) -> bool:
    """Whether a `lease_end` row (token, op, outcome) says `op` ended this very lease: the call
    is a repeat of the one that did, after a fenced write changed nothing."""
    return row is not None and row[0] == lease.token and row[1] == op


def ended(row: tuple[Any, ...] | None, lease: Lease, op: str) -> str:
    """After a fenced write changed nothing, from the item's `lease_end` row: the stored outcome
    if this is a repeat of the call that ended this very lease, else `LeaseLost`."""
    if row is not None and is_repeat(row, lease, op):
        return str(row[2])
    raise LeaseLost(lease.id, lease.token)


def run_at_us(item: NewItem, now_us: int) -> int:
    """When a new item becomes claimable: its `run_at`, else `now_us` plus its delay."""
    if item.run_at is not None:
        return to_micros(item.run_at)
    return now_us + seconds_to_micros(item.delay)


def queue_stats(queue: str, row: Sequence[Any]) -> QueueStats:
    """QueueStats from a `stats` row (queued, claimed, expired, total, dead, cancelled): done
    is what the total holds besides the others."""
    queued, claimed, expired, total, dead, cancelled = (int(n) for n in row)
    return QueueStats(
        queue=queue,
        queued=queued,
        claimed=claimed,
        done=total - queued - claimed - dead - cancelled,
        dead=dead,
        cancelled=cancelled,
        expired=expired,
    )


def purge_params(
    queue: str | None, older_than_seconds: float, limit: int | None, now_us: int, *, no_limit: int
) -> dict[str, Any]:
    """The `purge` statement's parameters (`no_limit`: the store's LIMIT for "no limit")."""
    return {
        "queue": queue,
        "cutoff": now_us - seconds_to_micros(older_than_seconds),
        "limit": no_limit if limit is None else limit,
    }


def earliest(*times: Any) -> int | None:
    """The earliest of the times given (microseconds; None ones left out), or None."""
    due = [int(t) for t in times if t is not None]
    return min(due) if due else None
