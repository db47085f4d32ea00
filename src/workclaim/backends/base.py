"""The Backend protocol: the storage verbs every backend implements, each docstring its contract.

The verbs come in five groups a reader can take one at a time: `Leasing` (claim ... fail,
complete_and_claim), `Inspection` (get ... next_due), `Administration` (enqueue, cancel, requeue,
purge, policies), `Scheduling` (schedules and firing a slot) and `Lifecycle` (schema, clock,
wake-ups, close); `Backend` is all five. Transactional enqueue is an optional capability of its
own, `TransactionalEnqueue`, checked with `isinstance`.

`Queue` validates arguments, applies policy (default attempts, backoff, retention) and calls these
verbs; a backend only stores. Every verb is one atomic transaction or script. `now=None` means the
store's own clock (PostgreSQL `clock_timestamp()`, Redis `TIME`, the SQLite host's clock); tests
pass a datetime instead of sleeping. Driver errors are translated into `workclaim.errors` here,
at the boundary, with `raise ... from exc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from workclaim.backends.wakeup import Wakeup
from workclaim.models import (
    GroupLeases,
    HistoryEvent,
    Item,
    Lease,
    QueuePolicy,
    QueueStats,
    Schedule,
    Status,
)


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item to enqueue, already validated; `payload` is encoded JSON text.

    Exactly one of `delay` (seconds after the store's clock) and `run_at` is used: `run_at`
    when it is set. `history`: whether the item's state changes are recorded in its attempt
    history (fixed for the item's life; every writer, including another client's reap, obeys it).
    `group`: the flow-control group (None: the queue's default group), fixed for the item's life.
    """

    payload: str
    priority: int
    delay: float
    run_at: datetime | None
    max_attempts: int
    dedupe_key: str | None
    history: bool = True
    group: str | None = None


@runtime_checkable
class Leasing(Protocol):
    """Taking and ending leases: the verbs a worker calls, all fenced by the lease token."""

    def claim(
        self,
        queues: Sequence[str],
        *,
        worker: str,
        lease_seconds: float,
        limit: int,
        now: datetime | None = None,
    ) -> list[Lease]:
        """Lease up to `limit` claimable items across `queues`, in the fair order and within the
        queues' policies (docs/contract.md, "Flow control").

        The fair order: by priority; within one priority, round-robin across groups (each group's
        first claimable item, then each group's second, ...), groups ordered by the greatest
        token the store ever issued to an item of theirs (never served first), ties by
        `(run_at, id)`. With one group (no groups used) that is `(priority, run_at, id)`.
        Limits: an item is taken only if, after taking it, the queue's and the group's live
        leases and claims within the rate windows stay within the policy, and the queue is not
        paused; a limited claim returns fewer items (or none), it never waits.

        First returns expired leases to `queued` (or `dead` when no attempt is left): a bounded
        number of `queues`' own, oldest first, so that an expired item of theirs is claimable by
        this claim however many leases expired elsewhere, and a bounded number of any queue's.
        A name given twice counts once. Claimable: `queued` with `run_at <= now`. Each leased
        item gets `claimed`, attempts + 1, a new token greater than any token the store has
        issued, the worker, and `expires_at = now + lease_seconds`. Returns `[]` when nothing is
        claimable.
        """
        ...

    def heartbeat(
        self, lease: Lease, *, extend_seconds: float | None, now: datetime | None = None
    ) -> Lease:
        """Set `expires_at = now + extend_seconds` (None: the lease's own length, as stored at
        claim time) if `lease` is current and unexpired.

        Current: the item is `claimed` with this token and worker. Otherwise raise `LeaseLost`
        and change nothing. Returns the lease with the new expiry.
        """
        ...

    def complete(self, lease: Lease, *, result: str | None, now: datetime | None = None) -> None:
        """Mark the item `done` (storing `result` JSON text) if `lease` is current and unexpired.

        A repeat of the `complete` that ended this lease returns quietly; anything else stale
        raises `LeaseLost` and changes nothing.
        """
        ...

    def release(self, lease: Lease, *, delay_seconds: float, now: datetime | None = None) -> None:
        """Put the item back to `queued` at `now + delay_seconds`, giving the attempt back.

        Fenced like `complete`, with the same idempotent repeat.
        """
        ...

    def fail(
        self,
        lease: Lease,
        *,
        error: str,
        retry_delay: float | None,
        now: datetime | None = None,
    ) -> Status:
        """Record `error`; `queued` at `now + retry_delay` if attempts remain and `retry_delay`
        is not None, else `dead`. Returns the new status.

        Fenced like `complete`; a repeat of the `fail` that ended this lease returns the status
        it returned the first time.
        """
        ...

    def complete_and_claim(
        self,
        done: Sequence[tuple[Lease, str | None]],
        queues: Sequence[str],
        *,
        worker: str,
        lease_seconds: float,
        limit: int,
        now: datetime | None = None,
    ) -> tuple[list[bool], list[Lease]]:
        """Complete every `(lease, result)` in `done`, then claim up to `limit` like `claim`, all
        in one transaction or script (the worker runtime's one round trip per turn).

        Each completion is fenced like `complete`: the flag for a stale lease is False and that
        item is left unchanged (no error, the others still complete); a repeat of the complete
        that ended a lease is True. `limit` may be 0 (complete only). The claim sees the slots
        the completions freed. Returns the flags in `done`'s order and the new leases.
        """
        ...


@runtime_checkable
class Inspection(Protocol):
    """Reading the store without changing it: items, their history, queues, counts, due times."""

    def get(self, item_id: int) -> Item | None:
        """The item, or None if there is no such id."""
        ...

    def history(
        self, item_id: int, *, limit: int, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent] | None:
        """Up to `limit` events of the item's attempt history from position `start` (0: the
        first), oldest first (ties in the order written), or newest first with `newest_first`
        (positions then count from the newest); `[]` when the item keeps none or the page is past
        the end; None when there is no such item. A history only grows while its item exists, so
        a position is a stable cursor."""
        ...

    def items(
        self, queue: str, status: Status, *, limit: int, after_id: int | None = None
    ) -> list[Item]:
        """Up to `limit` items of `queue` in `status`, by ascending id, only ids above
        `after_id` when it is given (paging for the dashboard and scripts)."""
        ...

    def queues(self) -> list[str]:
        """The names of the queues that hold at least one item, sorted."""
        ...

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        """Counts per status for `queue`, plus `claimed` items whose lease expired; zeros for an
        unknown queue."""
        ...

    def policy(self, queue: str) -> QueuePolicy:
        """The queue's stored policy; no limits and not paused when none was ever set."""
        ...

    def live_leases_by_group(
        self, queue: str, *, limit: int, now: datetime | None = None
    ) -> list[GroupLeases]:
        """The `limit` groups of `queue` holding the most live leases now (most first, ties by
        group name, the default group first), groups with none left out."""
        ...

    def next_due(self, queues: Sequence[str], *, now: datetime | None = None) -> datetime | None:
        """The earliest store-clock time at which the clock alone makes something in `queues`
        claimable (a delayed item, a retry's backoff, a lease's expiry, a rate window moving on
        past a claim that fills it), or None: `now` itself
        while a lease of `queues` has expired and is not reaped yet (the next claim reaps it),
        else a time after `now`. May be earlier than needed (a waiter then just looks again)."""
        ...


@runtime_checkable
class Administration(Protocol):
    """Putting items in and managing them: enqueue, cancel, requeue, purge."""

    def enqueue(
        self, queue: str, items: Sequence[NewItem], *, now: datetime | None = None
    ) -> list[int]:
        """Store all items as `queued`, or none; ids in input order.

        An item whose `dedupe_key` is held in `queue` by a `queued` or `claimed` item gets that
        item's id and creates nothing (also for a repeat inside the same batch).
        """
        ...

    def cancel(self, item_id: int, *, now: datetime | None = None) -> None:
        """`queued` -> `cancelled`, freeing its dedupe key. Raises `ItemNotFound`, or
        `InvalidState` for any other status."""
        ...

    def requeue(
        self, item_id: int, *, max_attempts: int | None, now: datetime | None = None
    ) -> None:
        """`dead` -> `queued` now, with attempts reset (and `max_attempts` replaced if given).

        Raises `ItemNotFound`, or `InvalidState` when the item is not dead or its dedupe key is
        held by another live item.
        """
        ...

    def purge(
        self,
        queue: str | None,
        *,
        older_than_seconds: float,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> int:
        """Delete finished items (`done`, `dead`, `cancelled`) of `queue` (None: every queue)
        that finished more than `older_than_seconds` ago, at most `limit`; returns the count.
        Tokens are never reused after a purge."""
        ...

    def set_policy(self, policy: QueuePolicy) -> QueuePolicy:
        """Store `policy`'s limits for its queue (replacing all four; the paused flag is kept);
        returns the stored policy. Claims from now on obey it; leases beyond a lowered limit
        run on, and no new lease is given until they are back within it. Waiting claims are
        woken (a raised limit may free slots)."""
        ...

    def set_paused(self, queue: str, paused: bool) -> QueuePolicy:
        """Pause or resume `queue`; returns the stored policy. Linearisable: once it returns,
        no claim that starts afterwards takes an item of a paused queue (leases already given
        run on and may end as usual). Resuming wakes waiting claims."""
        ...


@dataclass(frozen=True, slots=True)
class NewSchedule:
    """A schedule to store, already validated: `payload` is encoded JSON text, `cron` and
    `timezone` parse (workclaim.schedules.Cron), `catch_up` is one of the `CatchUp` values."""

    name: str
    queue: str
    cron: str
    payload: str
    timezone: str
    priority: int
    max_attempts: int | None
    group: str | None
    catch_up: str
    enabled: bool


@runtime_checkable
class Scheduling(Protocol):
    """Schedules kept in the store, and the one verb that enqueues a slot exactly once."""

    def set_schedule(self, schedule: NewSchedule, *, now: datetime | None = None) -> Schedule:
        """Create or replace the schedule named `schedule.name`; returns it as stored.

        A new schedule gets version 1, `set_at = now` and no last slot. Replacing it with
        different settings (any field) bumps the version and sets `set_at = now`, keeping
        `last_slot` and `last_item_id`, so slots that came before the change are never
        enqueued; replacing it with identical settings changes nothing (not even `set_at`), so
        an application that declares its schedules at every start loses no slot. Wakes the
        schedulers (the store's wake-up signal).
        """
        ...

    def remove_schedule(self, name: str) -> bool:
        """Delete the schedule; True if it existed. Items it enqueued are left alone."""
        ...

    def schedules(self) -> list[Schedule]:
        """Every schedule, by name (`next_slot` left None: `Queue` computes it)."""
        ...

    def get_schedule(self, name: str) -> Schedule | None:
        """The schedule, or None if there is none by that name."""
        ...

    def fire_schedule(
        self,
        name: str,
        *,
        version: int,
        slot: datetime,
        item: NewItem,
        now: datetime | None = None,
    ) -> int | None:
        """Enqueue `item` into the schedule's queue for `slot`, exactly once, in one transaction
        or script; returns the new item's id, or None and changes nothing.

        It writes only if the schedule exists, is enabled, still has `version`, and `slot` is
        after both its `set_at` and its `last_slot`; then it stores the item (as `enqueue`
        would, dedupe key included) and sets `last_slot = slot`, `last_item_id = id`. So any
        number of schedulers may offer the same slot: the first write wins and every other is
        refused, and a slot older than one already fired is refused too.
        """
        ...


@runtime_checkable
class Lifecycle(Protocol):
    """Schema, clock, wake-ups and closing: what `Queue` needs around the verbs."""

    def migrate(self) -> None:
        """Create or upgrade the schema to this version's. Idempotent; safe while others run."""
        ...

    def verify_schema(self) -> None:
        """Raise `SchemaMismatch` unless the store's schema is exactly this version's."""
        ...

    def store_now(self) -> datetime:
        """The store's clock now."""
        ...

    def wakeup(self) -> Wakeup:
        """This process's fan-out of "work may be claimable" signals for this store, started on
        first use (a LISTEN connection, a subscriber, a `data_version` poller)."""
        ...

    def close(self) -> None:
        """Release connections and stop listeners. Idempotent."""
        ...


@runtime_checkable
class Backend(Leasing, Inspection, Administration, Scheduling, Lifecycle, Protocol):
    """What a store must do to be a workclaim backend (SQLite, PostgreSQL, Redis): every group."""


@runtime_checkable
class TransactionalEnqueue(Protocol):
    """The optional capability of enqueueing inside the caller's own database transaction
    (`Queue.enqueue(connection=...)`); PostgreSQL has it, SQLite and Redis do not."""

    def enqueue_in_transaction(
        self,
        connection: Any,
        queue: str,
        items: Sequence[NewItem],
        *,
        now: datetime | None = None,
    ) -> list[int]:
        """Insert the items through the caller's `connection` and leave the commit to the
        caller: the items exist exactly when the caller's transaction commits, and listeners
        are notified then. Raises `ValidationError` for a connection the store cannot use."""
        ...
