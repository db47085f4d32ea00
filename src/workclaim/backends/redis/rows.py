"""The one mapping from the Redis scripts' replies to workclaim values (`Item`, `Lease`,
`HistoryEvent`): an item's hash by field name, a claim's flat reply, an event's stored text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from workclaim._time import from_micros
from workclaim.models import EventKind, HistoryEvent, Item, Lease, Status

LEASE_FIELDS = 7  # id, queue, payload, token, attempt, max_attempts, expires_at


def leases(r: Sequence[Any], worker: str, lease_seconds: float) -> list[Lease]:
    """Leases from a claim script's flat reply (`LEASE_FIELDS` values per lease)."""
    loads = json.loads
    return [
        Lease(i, q, loads(p), tok, att, most, from_micros(exp), worker, lease_seconds)
        for i, q, p, tok, att, most, exp in zip(*[iter(r)] * LEASE_FIELDS, strict=True)
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
    )


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
