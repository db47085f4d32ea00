"""`Queue` (sync) and `AsyncQueue`: the public API over one backend.

`Queue` validates every argument, applies the policy in `Settings` (default attempts, backoff with
jitter, retention) and calls the backend's verbs. `AsyncQueue` runs the same sync core on a thread
pool of its own and awaits wake-ups on events, so a long `wait` holds no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar

from workclaim import otel
from workclaim._deprecated import claim_renamed
from workclaim.api import AsyncQueueAPI, QueueAPI
from workclaim.backends import Backend, NewItem, NewSchedule, TransactionalEnqueue, open_backend
from workclaim.config import Settings
from workclaim.errors import (
    BackendError,
    ItemNotFound,
    ScheduleNotFound,
    ValidationError,
    WorkclaimError,
)
from workclaim.models import (
    GroupLeases,
    HistoryEvent,
    Item,
    Lease,
    QueuePolicy,
    QueueStats,
    Rate,
    Schedule,
    Status,
)
from workclaim.schedules import Cron, check_catch_up, check_schedule_name, next_slot, slot_key
from workclaim.validation import (
    MAX_ID,
    check_batch,
    check_delay,
    check_due,
    check_flag,
    check_group,
    check_id,
    check_int,
    check_lease,
    check_max_attempts,
    check_name,
    check_policy,
    check_priority,
    check_queues,
    check_time,
    check_wait,
    clip_error,
    encode_json,
    encode_payloads,
)
from workclaim.verb_logs import (
    CANCEL,
    CLAIM,
    COMPLETE,
    COMPLETE_AND_CLAIM,
    ENQUEUE,
    FAIL,
    FIRE,
    HEARTBEAT,
    POLICY,
    PRUNE,
    PURGE,
    RELEASE,
    REQUEUE,
    SCHEDULE,
    UNSCHEDULE,
    Logged,
    logged,
)

T = TypeVar("T")

log = logging.getLogger("workclaim")

# Retention prunes a batch at most once a minute per `Queue`; a full batch means more is past
# retention, and the next batch follows a second later, so pruning keeps up with up to
# PRUNE_BATCH items finished per second per process (once a minute it kept up with 17).
PRUNE_EVERY_SECONDS = 60.0
PRUNE_CATCH_UP_SECONDS = 1.0
PRUNE_BATCH = 1_000
# A waiting claim looks again at once when expired leases remain in its queues; while such
# looks find nothing (another claim is reaping them right now) it pauses 1, 2, 4... ms, at most:
OVERDUE_MAX_PAUSE = 0.1


class _Pauses:
    """The pauses of one waiting claim between its looks (the claim loops of `Queue` and
    `AsyncQueue`): each until the wait's deadline, a wake-up from the store, or the earliest
    time the clock makes something claimable in its queues, whichever is first. Something due
    already (an expired lease not reaped yet, which the next claim reaps) means: look again at
    once, and back off only while that keeps finding nothing, so a wait never sleeps beside a
    claimable item and never spins."""

    def __init__(
        self, backend: Backend, queues: Sequence[str], wait: float, now: datetime | None
    ) -> None:
        self.backend = backend
        self.queues = queues
        self.now = now
        self.deadline = time.monotonic() + wait
        self.overdue_pause = 0.0  # the pause after the next look that finds something due

    def next(self) -> float | None:
        """How long to sleep before the next look; None when the wait is over."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return None
        due = self.backend.next_due(self.queues, now=self.now)
        if due is None:
            until_due = remaining
        else:
            until_due = (due - (self.now or self.backend.store_now())).total_seconds()
        if until_due > 0:
            self.overdue_pause = 0.0
            return min(remaining, until_due)
        pause = self.overdue_pause
        self.overdue_pause = min(max(2 * pause, 0.001), OVERDUE_MAX_PAUSE)
        return min(remaining, pause)


class Queue:
    """A work queue on one store, shared safely by any number of workers and processes.

    >>> with Queue("sqlite:///:memory:") as q:
    ...     item_id = q.enqueue("emails", {"to": "a@example.org"})
    ...     [lease] = q.claim("emails", worker="w-1")
    ...     q.complete(lease)
    """

    def __init__(
        self, url: str, *, settings: Settings | None = None, backend: Backend | None = None
    ) -> None:
        self.url = url
        self.settings = settings or Settings()
        self.backend: Backend = backend or open_backend(url, self.settings)
        self._next_prune = 0.0
        self._prune_lock = threading.Lock()
        self._otel: otel.Instrumentation | None = None
        self._logged: Logged = logged
        try:
            if self.settings.auto_migrate:
                self.backend.migrate()
            else:
                self.backend.verify_schema()
        except BaseException:
            if backend is None:  # ours: nobody else could close its connections and threads
                with contextlib.suppress(Exception):  # the first error is the one to see
                    self.backend.close()
            raise
        # OpenTelemetry, decided once here: without a configured provider the verbs call
        # `logged` itself and nothing else.
        self._otel = otel.instrument(self.stats)
        if self._otel is not None:
            self._logged = self._otel.wrap(logged)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Release the store's connections. Idempotent."""
        if self._otel is not None:
            self._otel.close()
        self.backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def migrate(self) -> None:
        """Create or upgrade the schema (done automatically unless `auto_migrate` is off)."""
        self.backend.migrate()

    # -- producing -------------------------------------------------------------------------
    def _item_template(
        self,
        queue: str,
        priority: int,
        delay: float,
        run_at: datetime | None,
        max_attempts: int | None,
        dedupe_key: str | None,
        group: str | None,
        now: datetime | None,
    ) -> NewItem:
        """The validated options of an enqueue as a NewItem without its payload yet."""
        priority = check_priority(priority)
        delay = check_delay(delay)
        check_due(now, delay)
        if run_at is not None:
            run_at = check_time(run_at)
            if delay:
                raise ValidationError("give either delay or run_at, not both")
        if max_attempts is not None:
            max_attempts = check_max_attempts(max_attempts)
        if dedupe_key is not None:
            dedupe_key = check_name(dedupe_key, "dedupe key")
        group = check_group(group)
        return NewItem(
            payload="",
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts or self.settings.max_attempts_for(queue),
            dedupe_key=dedupe_key,
            history=self.settings.history_for(queue),
            group=group,
        )

    def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        dedupe_key: str | None = None,
        group: str | None = None,
        now: datetime | None = None,
        connection: Any = None,
    ) -> int:
        """Add one item; returns its id, or the id of the live item holding `dedupe_key`.

        `group`: its flow-control group (a name; None is the queue's default group), which the
        queue's `group_concurrency` and `group_rate` count by and its fair order rotates over.

        `connection` (PostgreSQL and MariaDB only): a psycopg (MariaDB: MySQLdb) connection whose
        transaction the item joins; it exists exactly when that transaction commits
        (docs/postgres.md, docs/mariadb.md).
        """
        queue = check_name(queue, "queue name")
        template = self._item_template(
            queue, priority, delay, run_at, max_attempts, dedupe_key, group, now
        )
        text = encode_json(payload, what="payload", max_bytes=self.settings.max_payload_bytes)
        items = [replace(template, payload=text)]
        return self._logged(ENQUEUE, self.settings, self._store, queue, items, now, connection)[0]

    def enqueue_many(
        self,
        queue: str,
        payloads: Iterable[Any],
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        group: str | None = None,
        now: datetime | None = None,
        connection: Any = None,
    ) -> list[int]:
        """Add many items atomically (all or none), all in `group`; ids in input order.
        `connection`: as for `enqueue`."""
        queue = check_name(queue, "queue name")
        template = self._item_template(
            queue, priority, delay, run_at, max_attempts, None, group, now
        )
        texts = encode_payloads(payloads, max_bytes=self.settings.max_payload_bytes)
        if not texts:
            return []
        items = [replace(template, payload=text) for text in texts]
        return self._logged(ENQUEUE, self.settings, self._store, queue, items, now, connection)

    def _store(
        self, queue: str, items: list[NewItem], now: datetime | None, connection: Any
    ) -> list[int]:
        """Hand the items to the backend, inside the caller's transaction when `connection`
        is given (only a `TransactionalEnqueue` backend can)."""
        if connection is None:
            ids = self.backend.enqueue(queue, items, now=now)
        else:
            if not isinstance(self.backend, TransactionalEnqueue):
                raise ValidationError(
                    "enqueue(connection=...) joins a PostgreSQL or MariaDB transaction; this "
                    "queue's store cannot, so leave connection out"
                )
            ids = self.backend.enqueue_in_transaction(connection, queue, items, now=now)
        return ids

    # -- consuming -------------------------------------------------------------------------
    @claim_renamed
    def claim(
        self,
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_seconds: float = 30.0,
        limit: int = 1,
        wait: float = 0.0,
        now: datetime | None = None,
    ) -> list[Lease]:
        """Lease up to `limit` items from `queues` in `(priority, run_at, id)` order.

        With `wait > 0` blocks until something is claimable or the wait ends, woken by the store
        (never a tight poll). Returns `[]` when nothing is claimable.
        """
        names, worker, lease_seconds, limit, wait = _check_claim(
            queues, worker, lease_seconds, limit, wait
        )
        self._maybe_prune()
        claim = partial(
            self.backend.claim,
            names,
            worker=worker,
            lease_seconds=lease_seconds,
            limit=limit,
            now=now,
        )
        if wait <= 0:
            return self._logged(CLAIM, self.settings, claim)
        wakeup = self.backend.wakeup()
        pauses = _Pauses(self.backend, names, wait, now)
        while True:
            generation = wakeup.generation()
            leases = self._logged(CLAIM, self.settings, claim)
            if leases:
                return leases
            pause = pauses.next()
            if pause is None:
                return []
            wakeup.wait(generation, pause)

    def heartbeat(
        self, lease: Lease, *, extend: float | None = None, now: datetime | None = None
    ) -> Lease:
        """Push the lease's expiry to `now + (extend or the lease's length)`; returns the new
        lease. Raises `LeaseLost` if the lease is stale or already expired."""
        _check_lease_arg(lease)
        seconds = None if extend is None else check_lease(extend)
        return self._logged(
            HEARTBEAT, self.settings, self.backend.heartbeat, lease, extend_seconds=seconds, now=now
        )

    def complete(self, lease: Lease, *, result: Any = None, now: datetime | None = None) -> None:
        """Mark the item done. Raises `LeaseLost` if the lease is stale or expired; repeating a
        successful complete with the same lease is harmless."""
        _check_lease_arg(lease)
        text = None
        if result is not None:
            text = encode_json(result, what="result", max_bytes=self.settings.max_payload_bytes)
        self._logged(COMPLETE, self.settings, self.backend.complete, lease, result=text, now=now)

    def release(self, lease: Lease, *, delay: float = 0.0, now: datetime | None = None) -> None:
        """Give the item back (after `delay` seconds) without using up an attempt."""
        _check_lease_arg(lease)
        delay = check_delay(delay)
        check_due(now, delay)
        self._logged(
            RELEASE, self.settings, self.backend.release, lease, delay_seconds=delay, now=now
        )

    def fail(
        self,
        lease: Lease,
        error: object,
        *,
        retry: bool = True,
        retry_delay: float | None = None,
        now: datetime | None = None,
    ) -> Status:
        """Record a failure: retried after a backoff while attempts remain (`retry=True`), else
        `dead`. `retry_delay` replaces the backoff with exactly that many seconds (a handler's
        `RetryAfter`, a task's own backoff). Returns the item's new status."""
        _check_lease_arg(lease)
        if not retry:
            delay = None
        elif retry_delay is not None:
            delay = check_delay(retry_delay, "retry_delay")
        else:
            delay = self.settings.backoff.delay(lease.attempt)
        check_due(now, delay or 0.0, "retry backoff")
        text = clip_error(error)
        return self._logged(
            FAIL, self.settings, self.backend.fail, lease, error=text, retry_delay=delay, now=now
        )

    @claim_renamed
    def complete_and_claim(
        self,
        done: Iterable[Lease | tuple[Lease, Any]],
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_seconds: float = 30.0,
        limit: int = 1,
        now: datetime | None = None,
    ) -> tuple[list[Lease], list[Lease]]:
        """Complete the finished leases (a Lease, or `(lease, result)`) and claim up to `limit`
        new items in one round trip; `limit=0` only completes. Returns `(lost, leases)`: the
        leases whose completion was refused as stale (those items are left as they are) and the
        new leases. Nothing waits: an empty `leases` means nothing was claimable."""
        names = check_queues(queues)
        worker = check_name(worker, "worker name")
        lease_seconds = check_lease(lease_seconds)
        limit = 0 if limit == 0 else check_batch(limit)
        pairs = [self._completion(entry) for entry in done]
        self._maybe_prune()
        flags, leases = self._logged(
            COMPLETE_AND_CLAIM,
            self.settings,
            self.backend.complete_and_claim,
            pairs,
            names,
            worker=worker,
            lease_seconds=lease_seconds,
            limit=limit,
            now=now,
        )
        lost = [pair[0] for pair, ok in zip(pairs, flags, strict=True) if not ok]
        return lost, leases

    def _completion(self, entry: Lease | tuple[Lease, Any]) -> tuple[Lease, str | None]:
        """A finished lease and its encoded result, checked like `complete`'s arguments."""
        lease, result = entry if isinstance(entry, tuple) else (entry, None)
        _check_lease_arg(lease)
        if result is None:
            return lease, None
        return lease, encode_json(result, what="result", max_bytes=self.settings.max_payload_bytes)

    # -- inspection and housekeeping -------------------------------------------------------
    def get(self, item_id: int) -> Item:
        """The item with this id; raises `ItemNotFound`."""
        item = self.backend.get(check_id(item_id))
        if item is None:
            raise ItemNotFound(item_id)
        return item

    def history(
        self, item_id: int, *, limit: int = 1_000, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent]:
        """Up to `limit` (1 to 1000) events of the item's attempt history, oldest first (or
        newest first), from position `start`: pass `start + len(page)` for the next page, which
        is empty after the last. `[]` when its queue keeps none. Raises `ItemNotFound`."""
        events = self.backend.history(
            check_id(item_id),
            limit=check_batch(limit, "limit"),
            start=check_int(start, "start", low=0, high=MAX_ID),
            newest_first=bool(newest_first),
        )
        if events is None:
            raise ItemNotFound(item_id)
        return events

    def items(
        self,
        queue: str,
        status: Status | str = Status.QUEUED,
        *,
        limit: int = 100,
        after: int | None = None,
    ) -> list[Item]:
        """Up to `limit` (1 to 1000) items of `queue` in `status`, by ascending id; pass the
        last id seen as `after` for the next page."""
        try:
            wanted = Status(status)
        except ValueError:
            choices = ", ".join(s.value for s in Status)
            raise ValidationError(f"status must be one of {choices}, got {status!r}") from None
        return self.backend.items(
            check_name(queue, "queue name"),
            wanted,
            limit=check_batch(limit, "limit"),
            after_id=None if after is None else check_id(after),
        )

    def queues(self) -> list[str]:
        """The names of the queues that hold at least one item, sorted."""
        return self.backend.queues()

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        """Counts per status plus expired leases; zeros for a queue never used."""
        return self.backend.stats(check_name(queue, "queue name"), now=now)

    def cancel(self, item_id: int, *, now: datetime | None = None) -> None:
        """Cancel a queued item; a claimed or finished one raises `InvalidState`."""
        self._logged(CANCEL, self.settings, self.backend.cancel, check_id(item_id), now=now)

    def requeue(
        self, item_id: int, *, max_attempts: int | None = None, now: datetime | None = None
    ) -> None:
        """Move a dead item back to queued with fresh attempts."""
        if max_attempts is not None:
            max_attempts = check_max_attempts(max_attempts)
        self._logged(
            REQUEUE,
            self.settings,
            self.backend.requeue,
            check_id(item_id),
            max_attempts=max_attempts,
            now=now,
        )

    def purge(self, queue: str, *, older_than: float, now: datetime | None = None) -> int:
        """Delete the queue's finished items that finished more than `older_than` seconds ago."""
        queue = check_name(queue, "queue name")
        older_than = check_delay(older_than, "older_than")
        return self._logged(
            PURGE, self.settings, self.backend.purge, queue, older_than_seconds=older_than, now=now
        )

    # -- flow control ----------------------------------------------------------------------
    def set_policy(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        group_concurrency: int | None = None,
        rate: Rate | tuple[int, float] | None = None,
        group_rate: Rate | tuple[int, float] | None = None,
    ) -> QueuePolicy:
        """Set the queue's limits (all four at once; None lifts one), stored in the store so
        every process obeys them; the paused flag is kept. `rate`: `(count, per_seconds)`, at
        most `count` claims in any window of `per_seconds`. Returns the stored policy."""
        policy = check_policy(queue, concurrency, group_concurrency, rate, group_rate)
        return self._logged(POLICY, self.settings, self.backend.set_policy, policy)

    def policy(self, queue: str) -> QueuePolicy:
        """The queue's policy (no limits and not paused if none was set)."""
        return self.backend.policy(check_name(queue, "queue name"))

    def pause(self, queue: str) -> QueuePolicy:
        """Stop claims from taking the queue's items; once this returns, none does. Leases
        already given run on and may complete. Returns the stored policy."""
        name = check_name(queue, "queue name")
        return self._logged(POLICY, self.settings, self.backend.set_paused, name, True)

    def resume(self, queue: str) -> QueuePolicy:
        """Let claims take the queue's items again (waiting claims wake)."""
        name = check_name(queue, "queue name")
        return self._logged(POLICY, self.settings, self.backend.set_paused, name, False)

    def live_leases_by_group(
        self, queue: str, *, limit: int = 10, now: datetime | None = None
    ) -> list[GroupLeases]:
        """The `limit` (1 to 1000) groups of the queue holding the most live leases now."""
        return self.backend.live_leases_by_group(
            check_name(queue, "queue name"), limit=check_batch(limit, "limit"), now=now
        )

    # -- schedules -------------------------------------------------------------------------
    def schedule(
        self,
        name: str,
        queue: str,
        cron: str,
        *,
        payload: Any = None,
        timezone: str = "UTC",
        priority: int = 0,
        max_attempts: int | None = None,
        group: str | None = None,
        catch_up: str = "latest",
        enabled: bool = True,
        now: datetime | None = None,
    ) -> Schedule:
        """Create or replace the schedule `name`: `payload` is enqueued into `queue` once per
        slot of `cron` (five fields, six with seconds, or `@hourly`-style) in `timezone`, by
        whichever scheduler gets there first (docs/schedules.md). A change takes effect from the
        next slot; declaring the same schedule again changes nothing. `catch_up`: what to do
        with slots missed while no scheduler ran: "latest" (enqueue the most recent), "none",
        or "all" (every one, up to the scheduler's bound). Returns the stored schedule."""
        spec = NewSchedule(
            name=check_schedule_name(name),
            queue=check_name(queue, "queue name"),
            cron="",
            payload=encode_json(payload, what="payload", max_bytes=self.settings.max_payload_bytes),
            timezone="",
            priority=check_priority(priority),
            max_attempts=None if max_attempts is None else check_max_attempts(max_attempts),
            group=check_group(group),
            catch_up=check_catch_up(catch_up).value,
            enabled=check_flag(enabled, "enabled"),
        )
        parsed = Cron.parse(cron, timezone)
        spec = replace(spec, cron=parsed.expression, timezone=parsed.timezone)
        stored = self._logged(SCHEDULE, self.settings, self.backend.set_schedule, spec, now=now)
        return self._with_next(stored, now)

    def unschedule(self, name: str) -> bool:
        """Delete the schedule `name` (items it enqueued stay); True if it existed."""
        name = check_schedule_name(name)
        return self._logged(UNSCHEDULE, self.settings, self.backend.remove_schedule, name)

    def schedules(self, *, now: datetime | None = None) -> list[Schedule]:
        """Every schedule, by name, each with its next slot."""
        current = now or self.backend.store_now()
        return [self._with_next(s, current) for s in self.backend.schedules()]

    def get_schedule(self, name: str, *, now: datetime | None = None) -> Schedule:
        """The schedule `name` with its next slot; raises `ScheduleNotFound`."""
        found = self.backend.get_schedule(check_schedule_name(name))
        if found is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return self._with_next(found, now)

    def run_schedule_now(self, name: str, *, now: datetime | None = None) -> int:
        """Enqueue the schedule's item once now, outside its slots (they are not changed);
        returns the item's id."""
        found = self.get_schedule(name, now=now)
        return self.enqueue(
            found.queue,
            found.payload,
            priority=found.priority,
            max_attempts=found.max_attempts,
            group=found.group,
            now=now,
        )

    def fire_slot(
        self, schedule: Schedule, slot: datetime, *, now: datetime | None = None
    ) -> int | None:
        """Offer one slot of `schedule` (as read, with its version) to the store: returns the id
        of the item it enqueued, or None when the slot was already taken (by another scheduler)
        or the schedule changed since it was read. The scheduler's one write; exactly once per
        slot however many schedulers offer it."""
        template = self._item_template(
            schedule.queue,
            schedule.priority,
            0.0,
            None,
            schedule.max_attempts,
            slot_key(schedule.name, slot),
            schedule.group,
            now,
        )
        item = replace(
            template,
            payload=encode_json(
                schedule.payload, what="payload", max_bytes=self.settings.max_payload_bytes
            ),
        )
        return self._logged(
            FIRE,
            self.settings,
            self.backend.fire_schedule,
            schedule.name,
            version=schedule.version,
            slot=slot,
            item=item,
            now=now,
        )

    def _with_next(self, schedule: Schedule, now: datetime | None) -> Schedule:
        current = now or self.backend.store_now()
        return replace(schedule, next_slot=next_slot(schedule, current))

    def _maybe_prune(self) -> None:
        """Delete a bounded batch of items past retention, of every queue, at most once a minute
        per `Queue` (each process that claims prunes a little), or a second after a full batch
        (more is waiting: a busy queue finishes far more than a batch a minute).

        It runs inside a claim, and housekeeping must never fail the claim: a store error here
        (a lock wait past the deadline, a deadlock, a store that is down) is logged and the
        batch is tried again a minute later; the claim goes on and meets the store itself.
        """
        retention = self.settings.retention_seconds
        if retention <= 0:
            return
        clock = time.monotonic()
        if clock < self._next_prune or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._next_prune = clock + PRUNE_EVERY_SECONDS
            try:
                pruned = self._logged(
                    PRUNE,
                    self.settings,
                    self.backend.purge,
                    None,
                    older_than_seconds=retention,
                    limit=PRUNE_BATCH,
                )
                if pruned >= PRUNE_BATCH:
                    self._next_prune = clock + PRUNE_CATCH_UP_SECONDS
            except BackendError as exc:
                log.warning(
                    "retention: pruning finished items failed (%s); skipped, retried in %.0f s",
                    exc,
                    PRUNE_EVERY_SECONDS,
                )
        finally:
            self._prune_lock.release()


def _check_claim(
    queues: str | Sequence[str], worker: str, lease_seconds: float, limit: int, wait: float
) -> tuple[tuple[str, ...], str, float, int, float]:
    return (
        check_queues(queues),
        check_name(worker, "worker name"),
        check_lease(lease_seconds),
        check_batch(limit),
        check_wait(wait),
    )


def _release_quietly(queue: Queue, lease: Lease) -> None:
    """Give back a lease nobody will work on; if that fails it simply expires."""
    with contextlib.suppress(WorkclaimError):
        queue.release(lease)


def _check_lease_arg(lease: object) -> None:
    if not isinstance(lease, Lease):
        raise ValidationError(f"expected a Lease from claim(), got {type(lease).__name__}")


class AsyncQueue:
    """The `Queue` API for asyncio: the sync core on a thread pool of its own.

    Long waits in `claim(wait=...)` are awaited on the store's wake-up events, holding no thread
    and no connection while they wait.
    """

    def __init__(
        self,
        url: str,
        *,
        settings: Settings | None = None,
        backend: Backend | None = None,
        max_threads: int = 8,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_threads, thread_name_prefix="workclaim")
        self.sync = Queue(url, settings=settings, backend=backend)
        # Traced: each call runs in a copy of the caller's context (as `asyncio.to_thread`
        # does), so its span is a child of the caller's; untraced, the plain call.
        self._run = self._run_in_context if self.sync._otel is not None else self._run_plain

    async def _run_plain(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    async def _run_in_context(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, partial(context.run, fn, *args, **kwargs))

    async def close(self) -> None:
        """Release connections and the thread pool."""
        await self._run(self.sync.close)
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def migrate(self) -> None:
        """See `Queue.migrate`."""
        await self._run(self.sync.migrate)

    async def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        dedupe_key: str | None = None,
        group: str | None = None,
        now: datetime | None = None,
        connection: Any = None,
    ) -> int:
        """See `Queue.enqueue`."""
        return await self._run(
            self.sync.enqueue,
            queue,
            payload,
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            dedupe_key=dedupe_key,
            group=group,
            now=now,
            connection=connection,
        )

    async def enqueue_many(
        self,
        queue: str,
        payloads: Iterable[Any],
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        group: str | None = None,
        now: datetime | None = None,
        connection: Any = None,
    ) -> list[int]:
        """See `Queue.enqueue_many`."""
        return await self._run(
            self.sync.enqueue_many,
            queue,
            list(payloads),
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            group=group,
            now=now,
            connection=connection,
        )

    @claim_renamed
    async def claim(
        self,
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_seconds: float = 30.0,
        limit: int = 1,
        wait: float = 0.0,
        now: datetime | None = None,
    ) -> list[Lease]:
        """See `Queue.claim`; a long wait is awaited on the store's wake-up events."""
        names, worker, lease_seconds, limit, wait = _check_claim(
            queues, worker, lease_seconds, limit, wait
        )
        once = partial(
            self.sync.claim, names, worker=worker, lease_seconds=lease_seconds, limit=limit, now=now
        )
        if wait <= 0:
            return await self._run(once)
        wakeup = self.sync.backend.wakeup()
        pauses = _Pauses(self.sync.backend, names, wait, now)
        while True:
            generation = wakeup.generation()
            leases = await self._claim_or_give_back(once)
            if leases:
                return leases
            pause = await self._run(pauses.next)
            if pause is None:
                return []
            await wakeup.wait_async(generation, pause)

    async def _claim_or_give_back(self, once: Callable[[], list[Lease]]) -> list[Lease]:
        """One claim on the pool. A waiting claim may be cancelled (its client went away)
        while the claim runs in its thread: the leases it then returns are released, not lost
        until they expire."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, once)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._give_back)
            raise

    def _give_back(self, future: asyncio.Future[list[Lease]]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        for lease in future.result():
            self._executor.submit(_release_quietly, self.sync, lease)

    async def heartbeat(
        self, lease: Lease, *, extend: float | None = None, now: datetime | None = None
    ) -> Lease:
        """See `Queue.heartbeat`."""
        return await self._run(self.sync.heartbeat, lease, extend=extend, now=now)

    async def complete(
        self, lease: Lease, *, result: Any = None, now: datetime | None = None
    ) -> None:
        """See `Queue.complete`."""
        await self._run(self.sync.complete, lease, result=result, now=now)

    async def release(
        self, lease: Lease, *, delay: float = 0.0, now: datetime | None = None
    ) -> None:
        """See `Queue.release`."""
        await self._run(self.sync.release, lease, delay=delay, now=now)

    async def fail(
        self,
        lease: Lease,
        error: object,
        *,
        retry: bool = True,
        retry_delay: float | None = None,
        now: datetime | None = None,
    ) -> Status:
        """See `Queue.fail`."""
        return await self._run(
            self.sync.fail, lease, error, retry=retry, retry_delay=retry_delay, now=now
        )

    @claim_renamed
    async def complete_and_claim(
        self,
        done: Iterable[Lease | tuple[Lease, Any]],
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_seconds: float = 30.0,
        limit: int = 1,
        now: datetime | None = None,
    ) -> tuple[list[Lease], list[Lease]]:
        """See `Queue.complete_and_claim`."""
        return await self._run(
            self.sync.complete_and_claim,
            list(done),
            queues,
            worker=worker,
            lease_seconds=lease_seconds,
            limit=limit,
            now=now,
        )

    async def get(self, item_id: int) -> Item:
        """See `Queue.get`."""
        return await self._run(self.sync.get, item_id)

    async def history(
        self, item_id: int, *, limit: int = 1_000, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent]:
        """See `Queue.history`."""
        return await self._run(
            self.sync.history, item_id, limit=limit, start=start, newest_first=newest_first
        )

    async def items(
        self,
        queue: str,
        status: Status | str = Status.QUEUED,
        *,
        limit: int = 100,
        after: int | None = None,
    ) -> list[Item]:
        """See `Queue.items`."""
        return await self._run(self.sync.items, queue, status, limit=limit, after=after)

    async def queues(self) -> list[str]:
        """See `Queue.queues`."""
        return await self._run(self.sync.queues)

    async def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        """See `Queue.stats`."""
        return await self._run(self.sync.stats, queue, now=now)

    async def cancel(self, item_id: int, *, now: datetime | None = None) -> None:
        """See `Queue.cancel`."""
        await self._run(self.sync.cancel, item_id, now=now)

    async def requeue(
        self, item_id: int, *, max_attempts: int | None = None, now: datetime | None = None
    ) -> None:
        """See `Queue.requeue`."""
        await self._run(self.sync.requeue, item_id, max_attempts=max_attempts, now=now)

    async def purge(self, queue: str, *, older_than: float, now: datetime | None = None) -> int:
        """See `Queue.purge`."""
        return await self._run(self.sync.purge, queue, older_than=older_than, now=now)

    async def set_policy(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        group_concurrency: int | None = None,
        rate: Rate | tuple[int, float] | None = None,
        group_rate: Rate | tuple[int, float] | None = None,
    ) -> QueuePolicy:
        """See `Queue.set_policy`."""
        return await self._run(
            self.sync.set_policy,
            queue,
            concurrency=concurrency,
            group_concurrency=group_concurrency,
            rate=rate,
            group_rate=group_rate,
        )

    async def policy(self, queue: str) -> QueuePolicy:
        """See `Queue.policy`."""
        return await self._run(self.sync.policy, queue)

    async def pause(self, queue: str) -> QueuePolicy:
        """See `Queue.pause`."""
        return await self._run(self.sync.pause, queue)

    async def resume(self, queue: str) -> QueuePolicy:
        """See `Queue.resume`."""
        return await self._run(self.sync.resume, queue)

    async def live_leases_by_group(
        self, queue: str, *, limit: int = 10, now: datetime | None = None
    ) -> list[GroupLeases]:
        """See `Queue.live_leases_by_group`."""
        return await self._run(self.sync.live_leases_by_group, queue, limit=limit, now=now)

    async def schedule(
        self,
        name: str,
        queue: str,
        cron: str,
        *,
        payload: Any = None,
        timezone: str = "UTC",
        priority: int = 0,
        max_attempts: int | None = None,
        group: str | None = None,
        catch_up: str = "latest",
        enabled: bool = True,
        now: datetime | None = None,
    ) -> Schedule:
        """See `Queue.schedule`."""
        return await self._run(
            self.sync.schedule,
            name,
            queue,
            cron,
            payload=payload,
            timezone=timezone,
            priority=priority,
            max_attempts=max_attempts,
            group=group,
            catch_up=catch_up,
            enabled=enabled,
            now=now,
        )

    async def unschedule(self, name: str) -> bool:
        """See `Queue.unschedule`."""
        return await self._run(self.sync.unschedule, name)

    async def schedules(self, *, now: datetime | None = None) -> list[Schedule]:
        """See `Queue.schedules`."""
        return await self._run(self.sync.schedules, now=now)

    async def get_schedule(self, name: str, *, now: datetime | None = None) -> Schedule:
        """See `Queue.get_schedule`."""
        return await self._run(self.sync.get_schedule, name, now=now)

    async def run_schedule_now(self, name: str, *, now: datetime | None = None) -> int:
        """See `Queue.run_schedule_now`."""
        return await self._run(self.sync.run_schedule_now, name, now=now)


def _conforms(queue: Queue, async_queue: AsyncQueue) -> tuple[QueueAPI, AsyncQueueAPI]:
    """mypy checks here that `Queue` and `AsyncQueue` meet the API protocols."""
    return queue, async_queue
