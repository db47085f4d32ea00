"""The values workclaim hands out: items, leases, statuses, queue statistics and item history.

All are frozen dataclasses; timestamps are timezone-aware UTC; ids and tokens are
integers below 2**53 so they survive a JSON round trip in any language.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workclaim._time import utcnow


class Status(enum.StrEnum):
    """An item's place in its life: queued -> claimed -> done | queued | dead, or cancelled."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    DONE = "done"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the end states that `purge` and retention may delete."""
        return self in FINISHED


FINISHED = frozenset({Status.DONE, Status.DEAD, Status.CANCELLED})


@dataclass(frozen=True, slots=True)
class Lease:
    """What a claim returns: the right to work on one item until `expires_at` (store clock).

    `token` is a fencing token: unique in the store and strictly increasing for the item
    across its claims, so side effects can refuse a writer holding an older one. `group` is the
    item's flow-control group (None: the queue's default group). `enqueued_at` is the store
    time the item was enqueued (its `Item.created_at`), so a handler can measure its pickup
    latency; None only for a lease built by hand.
    """

    id: int
    queue: str
    payload: Any
    token: int
    attempt: int
    max_attempts: int
    expires_at: datetime
    worker: str
    lease_seconds: float
    group: str | None = None
    enqueued_at: datetime | None = None

    def time_left(self, now: datetime | None = None) -> float:
        """Seconds until the lease expires by the given clock (default: this host's)."""
        return (self.expires_at - (now or utcnow())).total_seconds()


@dataclass(frozen=True, slots=True)
class Item:
    """The full record of one item as stored; never carries the lease token."""

    id: int
    queue: str
    payload: Any
    status: Status
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    dedupe_key: str | None
    worker: str | None
    expires_at: datetime | None
    last_error: str | None
    result: Any
    created_at: datetime
    updated_at: datetime
    group: str | None = None

    @property
    def enqueued_at(self) -> datetime:
        """The store time the item was enqueued (its `created_at`), as leases carry it."""
        return self.created_at


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts of a queue's items per status, plus claimed items whose lease has expired."""

    queue: str
    queued: int = 0
    claimed: int = 0
    done: int = 0
    dead: int = 0
    cancelled: int = 0
    expired: int = 0

    @property
    def total(self) -> int:
        """All items the queue holds, whatever their status."""
        return self.queued + self.claimed + self.done + self.dead + self.cancelled


class EventKind(enum.StrEnum):
    """What happened to an item, as its attempt history records it."""

    CLAIMED = "claimed"
    HEARTBEAT = "heartbeat"
    RELEASED = "released"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    REQUEUED = "requeued"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One entry of an item's attempt history, written in the same transaction or script as the
    state change it records, and pruned with the item.

    `attempt` is the attempt the event belongs to (the lease's for lease events, the item's
    attempt count right after the change for `requeued` (0) and `cancelled`); `status` is the
    item's status right after it; `token` and `worker` are the lease's (None when no lease was
    involved); `error` is set for `failed` and `expired`.
    """

    item_id: int
    kind: EventKind
    at: datetime
    attempt: int
    status: Status
    token: int | None = None
    worker: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate limit: at most `count` claims in any window of `per_seconds` (store clock).

    A plain `(count, per_seconds)` tuple is accepted wherever a `Rate` is.
    """

    count: int
    per_seconds: float


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """A queue's flow control, stored in the store so every process obeys the same one.

    `concurrency`: most live leases in the queue; `group_concurrency`: most live leases in any
    one group of it; `rate` / `group_rate`: most claims in any window, of the queue / of any one
    group; `paused`: no claim takes an item from the queue. None means no limit. A live lease is
    one `claimed` with `expires_at` after the store's clock.
    """

    queue: str
    concurrency: int | None = None
    group_concurrency: int | None = None
    rate: Rate | None = None
    group_rate: Rate | None = None
    paused: bool = False

    @property
    def limited(self) -> bool:
        """Whether any limit or the pause applies (False: claims go the plain way)."""
        return self.paused or any(
            limit is not None
            for limit in (self.concurrency, self.group_concurrency, self.rate, self.group_rate)
        )


@dataclass(frozen=True, slots=True)
class GroupLeases:
    """How many live leases one group of a queue holds now (the dashboard's busiest groups)."""

    group: str | None
    live: int


class CatchUp(enum.StrEnum):
    """What a scheduler does with slots that came while no scheduler ran (docs/schedules.md)."""

    LATEST = "latest"  # enqueue only the most recent missed slot
    NONE = "none"  # enqueue none of them; wait for the next slot
    ALL = "all"  # enqueue every missed slot, oldest first, up to the scheduler's bound


@dataclass(frozen=True, slots=True)
class Schedule:
    """A periodic item: `payload` is enqueued into `queue` once per slot of `cron` in `timezone`.

    Stored in the store, so every scheduler process fires the same schedules. `version` grows
    with every change; `set_at` (store clock) is when the current version was set: only slots
    after it, and after `last_slot`, are ever enqueued. `last_slot` / `last_item_id`: the most
    recent slot enqueued and its item. `next_slot`: the first slot after now and after both,
    computed when the schedule is read (None if the schedule is disabled).
    """

    name: str
    queue: str
    cron: str
    payload: Any = None
    timezone: str = "UTC"
    priority: int = 0
    max_attempts: int | None = None
    group: str | None = None
    catch_up: CatchUp = CatchUp.LATEST
    enabled: bool = True
    version: int = 0
    set_at: datetime | None = None
    last_slot: datetime | None = None
    last_item_id: int | None = None
    next_slot: datetime | None = None
