"""Small helpers shared by the contract tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workclaim import Lease
from workclaim.api import QueueAPI

# A fixed starting instant for tests that move the clock by hand (never slept through).
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def claim_one(q: QueueAPI, queue: str = "jobs", *, t: float = 0, **options: Any) -> Lease:
    """Claim exactly one item at T0 + t and return its lease."""
    leases = q.claim(queue, worker=options.pop("worker", "w1"), now=at(t), **options)
    assert len(leases) == 1, leases
    return leases[0]


def status_of(q: QueueAPI, item_id: int) -> str:
    """The item's status as a plain string."""
    return str(q.get(item_id).status)
