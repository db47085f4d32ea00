"""What each `Queue` verb writes to `workclaim.events`, and the one call that writes it.

`Queue` calls the store through `logged(VERB, settings, call, *args, **kwargs)` (as Oban's
telemetry wraps every engine call): it runs the call and, only when `workclaim.events` is enabled
for the verb's level, hands the call's arguments and result to the verb's writer. So every
record's shape lives here, one writer per verb, and a disabled logger costs one `isEnabledFor`
check per call. A fenced verb refused with `LeaseLost` writes a `lease_lost` record at INFO and
re-raises. The fields of a record are described in `logs.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from workclaim import logs
from workclaim.backends import NewItem
from workclaim.config import Settings
from workclaim.errors import LeaseLost
from workclaim.logs import EVENTS, HOT, NOTABLE
from workclaim.models import Lease, QueuePolicy, Schedule, Status

P = ParamSpec("P")
R = TypeVar("R")

# (settings, the call's result, *the call's arguments, **its keyword arguments) -> None
Writer = Callable[..., None]


@dataclass(frozen=True, slots=True)
class Verb:
    """A verb's records: `write` runs only when the logger is enabled for `level` (for a verb
    whose records have two levels, the less verbose one; the writer checks the other)."""

    name: str
    level: int
    write: Writer
    fenced: bool = False  # the call's first argument is a Lease; `LeaseLost` is logged


class Logged(Protocol):
    """`logged`'s shape: what a `Queue` calls its verbs through (`logged` itself, or
    `workclaim.otel`'s wrapper of it when a provider is configured)."""

    def __call__(
        self,
        verb: Verb,
        settings: Settings,
        call: Callable[P, R],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R: ...


def logged(
    verb: Verb, settings: Settings, call: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """`call(*args, **kwargs)`, with the verb's records written when they are wanted."""
    try:
        result = call(*args, **kwargs)
    except LeaseLost:
        if verb.fenced and EVENTS.isEnabledFor(NOTABLE):
            logs.lease_event(NOTABLE, verb.name, cast(Lease, args[0]), "lease_lost")
        raise
    if EVENTS.isEnabledFor(verb.level):
        verb.write(settings, result, *args, **kwargs)
    return result


# -- the writers, each given what its call was given ------------------------------------------
def _enqueued(
    settings: Settings,
    ids: list[int],
    queue: str,
    items: Sequence[NewItem],
    now: object,
    connection: object,
) -> None:
    """`Queue._store(queue, items, now, connection)`: one record per item."""
    outcome = "queued" if connection is None else "queued_in_transaction"
    for item_id, item in zip(ids, items, strict=True):
        more: dict[str, Any] = {"payload": item.payload} if settings.log_payloads else {}
        logs.event(HOT, "enqueue", item_id=item_id, queue=queue, outcome=outcome, **more)


def _claimed(settings: Settings, leases: list[Lease]) -> None:
    """A claim with its arguments bound beforehand: one record per new lease."""
    logs.claimed(leases, payloads=settings.log_payloads)


def _extended(settings: Settings, extended: Lease, lease: Lease, **_: object) -> None:
    logs.lease_event(HOT, "heartbeat", extended, "extended")


def _completed(
    settings: Settings, _: None, lease: Lease, *, result: str | None, **__: object
) -> None:
    more = {"result": result} if settings.log_payloads else {}
    logs.lease_event(HOT, "complete", lease, "done", **more)


def _released(
    settings: Settings, _: None, lease: Lease, *, delay_seconds: float, **__: object
) -> None:
    logs.lease_event(NOTABLE, "release", lease, "queued", delay=delay_seconds)


def _failed(
    settings: Settings,
    status: Status,
    lease: Lease,
    *,
    error: str,
    retry_delay: float | None,
    **_: object,
) -> None:
    failed(status, lease, error, retry_delay)


def failed(status: Status, lease: Lease, error: str, retry_delay: float | None) -> None:
    """A failure with its error, attempt and retry delay (none when the item is dead: it will
    not be retried). The HTTP client writes the same record with the server's answer."""
    more = {} if status is Status.DEAD or retry_delay is None else {"retry_delay": retry_delay}
    logs.lease_event(NOTABLE, "fail", lease, status.value, error=logs.clip(error), **more)


def _completed_and_claimed(
    settings: Settings,
    result: tuple[list[bool], list[Lease]],
    done: Sequence[tuple[Lease, str | None]],
    queues: object,
    **_: object,
) -> None:
    """A completion (DEBUG) or a refusal (INFO) per finished lease, a claim per new lease."""
    flags, leases = result
    name = "complete_and_claim"
    for (lease, text), ok in zip(done, flags, strict=True):
        if not ok:
            logs.lease_event(NOTABLE, name, lease, "lease_lost")
        elif EVENTS.isEnabledFor(HOT):
            more = {"result": text} if settings.log_payloads else {}
            logs.lease_event(HOT, name, lease, "done", **more)
    if EVENTS.isEnabledFor(HOT):
        logs.claimed(leases, payloads=settings.log_payloads, name=name)


def _cancelled(settings: Settings, _: None, item_id: int, **__: object) -> None:
    logs.event(NOTABLE, "cancel", item_id=item_id, queue=None, outcome="cancelled")


def _requeued(settings: Settings, _: None, item_id: int, **__: object) -> None:
    logs.event(NOTABLE, "requeue", item_id=item_id, queue=None, outcome="queued")


def _purged(settings: Settings, count: int, queue: str, **_: object) -> None:
    logs.event(NOTABLE, "purge", item_id=None, queue=queue, outcome="deleted", count=count)


def _pruned(settings: Settings, count: int, queue: None, **_: object) -> None:
    """Retention's purge of every queue: a record only when it deleted something."""
    if count:
        logs.event(NOTABLE, "prune", item_id=None, queue=None, outcome="deleted", count=count)


def _policy_changed(settings: Settings, policy: QueuePolicy, *_: object, **__: object) -> None:
    """`set_policy`, `pause` and `resume`: the queue's whole policy as it now stands."""
    logs.event(
        NOTABLE,
        "policy",
        item_id=None,
        queue=policy.queue,
        outcome="paused" if policy.paused else "active",
        concurrency=policy.concurrency,
        group_concurrency=policy.group_concurrency,
        rate=None if policy.rate is None else (policy.rate.count, policy.rate.per_seconds),
        group_rate=(
            None
            if policy.group_rate is None
            else (policy.group_rate.count, policy.group_rate.per_seconds)
        ),
    )


def _scheduled(settings: Settings, schedule: Schedule, *_: object, **__: object) -> None:
    """`schedule`: the schedule as it now stands."""
    logs.event(
        NOTABLE,
        "schedule",
        item_id=None,
        queue=schedule.queue,
        outcome="enabled" if schedule.enabled else "disabled",
        schedule=schedule.name,
        cron=schedule.cron,
        timezone=schedule.timezone,
        version=schedule.version,
    )


def _unscheduled(settings: Settings, existed: bool, name: str, **_: object) -> None:
    logs.event(
        NOTABLE,
        "unschedule",
        item_id=None,
        queue=None,
        outcome="removed" if existed else "absent",
        schedule=name,
    )


def _fired(
    settings: Settings, item_id: int | None, name: str, *, slot: object, **_: object
) -> None:
    """A slot offered by a scheduler: `enqueued` by this one, or `taken` (another scheduler
    wrote it first, or the schedule changed) at DEBUG."""
    if item_id is None and not EVENTS.isEnabledFor(HOT):
        return
    logs.event(
        NOTABLE if item_id is not None else HOT,
        "fire",
        item_id=item_id,
        queue=None,
        outcome="enqueued" if item_id is not None else "taken",
        schedule=name,
        slot=str(slot),
    )


# -- the table: per-item verbs of the hot path at DEBUG, what an operator looks for at INFO ---
ENQUEUE = Verb("enqueue", HOT, _enqueued)
CLAIM = Verb("claim", HOT, _claimed)
HEARTBEAT = Verb("heartbeat", HOT, _extended, fenced=True)
COMPLETE = Verb("complete", HOT, _completed, fenced=True)
RELEASE = Verb("release", NOTABLE, _released, fenced=True)
FAIL = Verb("fail", NOTABLE, _failed, fenced=True)
COMPLETE_AND_CLAIM = Verb("complete_and_claim", NOTABLE, _completed_and_claimed)
CANCEL = Verb("cancel", NOTABLE, _cancelled)
REQUEUE = Verb("requeue", NOTABLE, _requeued)
PURGE = Verb("purge", NOTABLE, _purged)
PRUNE = Verb("prune", NOTABLE, _pruned)
POLICY = Verb("policy", NOTABLE, _policy_changed)
SCHEDULE = Verb("schedule", NOTABLE, _scheduled)
UNSCHEDULE = Verb("unschedule", NOTABLE, _unscheduled)
FIRE = Verb("fire", NOTABLE, _fired)
