"""The one mapping from the Redis scripts' replies to workclaim values (`Item`, `Lease`,
`HistoryEvent`, `QueuePolicy`, `GroupLeases`, `Schedule`): an item's hash by field name, a
claim's flat reply, an event's stored text, a policy's or a schedule's hash."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from workclaim._time import from_micros
from workclaim.models import (
    CatchUp,
    EventKind,
    GroupLeases,
    HistoryEvent,
    Item,
    Lease,
    QueuePolicy,
    Rate,
    Schedule,
    Status,
)

LEASE_FIELDS = 8  # id, queue, payload, token, attempt, max_attempts, expires_at, group


def leases(r: Sequence[Any], worker: str, lease_seconds: float) -> list[Lease]:
    """Leases from a claim script's flat reply (`LEASE_FIELDS` values per lease)."""
    loads = json.loads
    return [
        Lease(i, q, loads(p), tok, att, most, from_micros(exp), worker, lease_seconds, g or None)
        for i, q, p, tok, att, most, exp, g in zip(*[iter(r)] * LEASE_FIELDS, strict=True)
    ]


def item(item_id: int, flat: Sequence[str]) -> Item:
    """An item from its hash as a flat field/value array (HGETALL)."""
    f: dict[str, str] = dict(zip(flat[::2], flat[1::2], strict=True))
    return Item(
        id=item_id,
        queue=f["queue"],
        payload=json.loads(f["payload"]),
        status=Status(f["status"]),
        priority=int(f["priority"]),
        run_at=from_micros(int(f["run_at"])),
        attempts=int(f["attempts"]),
        max_attempts=int(f["max_attempts"]),
        dedupe_key=f.get("dedupe_key"),
        worker=f.get("worker"),
        expires_at=from_micros(int(f["expires_at"])) if f.get("expires_at") else None,
        last_error=f.get("last_error"),
        result=json.loads(f["result"]) if f.get("result") else None,
        created_at=from_micros(int(f["created_at"])),
        updated_at=from_micros(int(f["updated_at"])),
        group=f.get("group"),
    )


def policy(queue: str, flat: Sequence[str]) -> QueuePolicy:
    """A queue's policy from its hash as a flat field/value array (empty: no policy)."""
    f: dict[str, str] = dict(zip(flat[::2], flat[1::2], strict=True))

    def rate(name: str) -> Rate | None:
        count = f.get(f"{name}_count")
        return None if count is None else Rate(int(count), float(f[f"{name}_per"]))

    def limit(name: str) -> int | None:
        return int(f[name]) if name in f else None

    return QueuePolicy(
        queue=queue,
        concurrency=limit("concurrency"),
        group_concurrency=limit("group_concurrency"),
        rate=rate("rate"),
        group_rate=rate("group_rate"),
        paused=f.get("paused") == "1",
    )


def group_leases(flat: Sequence[Any]) -> list[GroupLeases]:
    """live_leases' reply: group ('' = the default group) then its live leases, per group."""
    return [GroupLeases(g or None, int(n)) for g, n in zip(flat[::2], flat[1::2], strict=True)]


def event(item_id: int, text: str) -> HistoryEvent:
    """One history event from its stored text kind|at|attempt|status|token|worker|error."""
    kind, at, attempt, status, token, worker, error = text.split("|", 6)
    return HistoryEvent(
        item_id=item_id,
        kind=EventKind(kind),
        at=from_micros(int(at)),
        attempt=int(attempt),
        status=Status(status),
        token=int(token) if token else None,
        worker=worker or None,
        error=error or None,
    )


def schedule(name: str, flat: Sequence[str]) -> Schedule:
    """A schedule from its hash as a flat field/value array (set_schedule, schedules);
    `next_slot` is left to `Queue`."""
    f: dict[str, str] = dict(zip(flat[::2], flat[1::2], strict=True))
    last_slot, last_item = f.get("last_slot"), f.get("last_item_id")
    return Schedule(
        name=name,
        queue=f["queue"],
        cron=f["cron"],
        payload=json.loads(f["payload"]),
        timezone=f["timezone"],
        priority=int(f["priority"]),
        max_attempts=int(f["max_attempts"]) if f["max_attempts"] else None,
        group=f["group"] or None,
        catch_up=CatchUp(f["catch_up"]),
        enabled=f["enabled"] == "1",
        version=int(f["version"]),
        set_at=from_micros(int(f["set_at"])),
        last_slot=from_micros(int(last_slot)) if last_slot else None,
        last_item_id=int(last_item) if last_item else None,
    )
