"""The client's public methods, written once as call plans that both transports run.

Each function here is one method of `Client` and `AsyncClient`: the signature after `options`
is the method's signature and its docstring is the method's docstring. It checks the arguments,
builds the `Call` (`_wire.Calls`) and returns the plan that sends it, `exchange` (the retry
loop); `claim` is a plan of its own that asks an empty claim again until its wait is over. A
plan yields requests and pauses instead of doing I/O. `Methods` is the one table of them:
`Client` and `AsyncClient` inherit it, and each turns every entry into a method of its own kind
(`bind=`) that sends what the plan yields.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from time import monotonic
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from workclaim._deprecated import CLAIM_RENAMES, renamed
from workclaim.client._wire import Calls, Options, Plan, claim_pause, exchange
from workclaim.errors import ScheduleNotFound
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

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from workclaim.client._async import AsyncClient
    from workclaim.client._sync import Client

P = ParamSpec("P")
T = TypeVar("T")


def migrate(options: Options) -> Plan[None]:
    """Nothing to do: the server migrates its own store."""
    return
    yield  # a plan with no step


def enqueue(
    options: Options,
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
) -> Plan[int]:
    """See `Queue.enqueue`."""
    call = Calls.enqueue(
        queue,
        payload,
        priority=priority,
        delay=delay,
        run_at=run_at,
        max_attempts=max_attempts,
        dedupe_key=dedupe_key,
        group=group,
        now=now,
    )
    return exchange(options, call)


def enqueue_many(
    options: Options,
    queue: str,
    payloads: Iterable[Any],
    *,
    priority: int = 0,
    delay: float = 0.0,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    group: str | None = None,
    now: datetime | None = None,
) -> Plan[list[int]]:
    """See `Queue.enqueue_many`."""
    call = Calls.enqueue_many(
        queue,
        payloads,
        priority=priority,
        delay=delay,
        run_at=run_at,
        max_attempts=max_attempts,
        group=group,
        now=now,
    )
    if not call.body["payloads"]:
        return []
    return (yield from exchange(options, call))


def claim(
    options: Options,
    queues: str | Sequence[str],
    *,
    worker: str | None = None,
    lease_seconds: float = 30.0,
    limit: int = 1,
    wait: float = 0.0,
    now: datetime | None = None,
) -> Plan[list[Lease]]:
    """See `Queue.claim`. `worker` may be omitted: the server uses the token's identity.
    A server that caps waits shorter than `wait` is asked again until `wait` is over."""
    call = Calls.claim(
        queues, worker=worker, lease_seconds=lease_seconds, limit=limit, wait=wait, now=now
    )
    deadline = monotonic() + call.body["wait"]
    while True:
        started = monotonic()
        leases = yield from exchange(options, call)
        pause = claim_pause(bool(leases), started, deadline, monotonic())
        if pause is None:
            return leases
        if pause > 0:
            yield pause
        remaining = deadline - monotonic()
        call = Calls.claim(
            queues,
            worker=worker,
            lease_seconds=lease_seconds,
            limit=limit,
            wait=max(remaining, 0.0),
            now=now,
        )


def heartbeat(
    options: Options, lease: Lease, *, extend: float | None = None, now: datetime | None = None
) -> Plan[Lease]:
    """See `Queue.heartbeat`."""
    return exchange(options, Calls.heartbeat(lease, extend=extend, now=now))


def complete(
    options: Options, lease: Lease, *, result: Any = None, now: datetime | None = None
) -> Plan[None]:
    """See `Queue.complete`."""
    return exchange(options, Calls.complete(lease, result=result, now=now))


def release(
    options: Options, lease: Lease, *, delay: float = 0.0, now: datetime | None = None
) -> Plan[None]:
    """See `Queue.release`."""
    return exchange(options, Calls.release(lease, delay=delay, now=now))


def fail(
    options: Options,
    lease: Lease,
    error: object,
    *,
    retry: bool = True,
    now: datetime | None = None,
) -> Plan[Status]:
    """See `Queue.fail`."""
    return exchange(options, Calls.fail(lease, error, retry=retry, now=now))


def get(options: Options, item_id: int) -> Plan[Item]:
    """See `Queue.get`."""
    return exchange(options, Calls.get(item_id))


def complete_and_claim(
    options: Options,
    done: Iterable[Lease | tuple[Lease, Any]],
    queues: str | Sequence[str],
    *,
    worker: str | None = None,
    lease_seconds: float = 30.0,
    limit: int = 1,
    now: datetime | None = None,
) -> Plan[tuple[list[Lease], list[Lease]]]:
    """See `Queue.complete_and_claim`; `worker` may be omitted (the token's identity).
    Never sent twice."""
    call = Calls.complete_and_claim(
        done, queues, worker=worker, lease_seconds=lease_seconds, limit=limit, now=now
    )
    return exchange(options, call)


def history(
    options: Options,
    item_id: int,
    *,
    limit: int = 1_000,
    start: int = 0,
    newest_first: bool = False,
) -> Plan[list[HistoryEvent]]:
    """See `Queue.history`."""
    call = Calls.history(item_id, limit=limit, start=start, newest_first=newest_first)
    return exchange(options, call)


def items(
    options: Options,
    queue: str,
    status: Status | str = Status.QUEUED,
    *,
    limit: int = 100,
    after: int | None = None,
) -> Plan[list[Item]]:
    """See `Queue.items`."""
    return exchange(options, Calls.items(queue, status, limit=limit, after=after))


def queues(options: Options) -> Plan[list[str]]:
    """See `Queue.queues` (admin)."""
    return exchange(options, Calls.queues())


def stats(options: Options, queue: str, *, now: datetime | None = None) -> Plan[QueueStats]:
    """See `Queue.stats` (needs the admin scope)."""
    return exchange(options, Calls.stats(queue, now=now))


def cancel(options: Options, item_id: int, *, now: datetime | None = None) -> Plan[None]:
    """See `Queue.cancel`."""
    return exchange(options, Calls.cancel(item_id, now=now))


def requeue(
    options: Options, item_id: int, *, max_attempts: int | None = None, now: datetime | None = None
) -> Plan[None]:
    """See `Queue.requeue` (admin)."""
    call = Calls.requeue(item_id, max_attempts=max_attempts, now=now)
    return exchange(options, call)


def purge(
    options: Options, queue: str, *, older_than: float, now: datetime | None = None
) -> Plan[int]:
    """See `Queue.purge` (admin)."""
    return exchange(options, Calls.purge(queue, older_than=older_than, now=now))


def set_policy(
    options: Options,
    queue: str,
    *,
    concurrency: int | None = None,
    group_concurrency: int | None = None,
    rate: Rate | tuple[int, float] | None = None,
    group_rate: Rate | tuple[int, float] | None = None,
) -> Plan[QueuePolicy]:
    """See `Queue.set_policy` (admin)."""
    call = Calls.set_policy(
        queue,
        concurrency=concurrency,
        group_concurrency=group_concurrency,
        rate=rate,
        group_rate=group_rate,
    )
    return exchange(options, call)


def policy(options: Options, queue: str) -> Plan[QueuePolicy]:
    """See `Queue.policy` (admin)."""
    return exchange(options, Calls.policy(queue))


def pause(options: Options, queue: str) -> Plan[QueuePolicy]:
    """See `Queue.pause` (admin)."""
    return exchange(options, Calls.set_paused(queue, True))


def resume(options: Options, queue: str) -> Plan[QueuePolicy]:
    """See `Queue.resume` (admin)."""
    return exchange(options, Calls.set_paused(queue, False))


def live_leases_by_group(
    options: Options, queue: str, *, limit: int = 10, now: datetime | None = None
) -> Plan[list[GroupLeases]]:
    """See `Queue.live_leases_by_group` (admin)."""
    return exchange(options, Calls.live_leases_by_group(queue, limit=limit, now=now))


def schedule(
    options: Options,
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
) -> Plan[Schedule]:
    """See `Queue.schedule` (admin)."""
    call = Calls.schedule(
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
    return exchange(options, call)


def unschedule(options: Options, name: str) -> Plan[bool]:
    """See `Queue.unschedule` (admin)."""
    call = Calls.unschedule(name)
    try:
        yield from exchange(options, call)
    except ScheduleNotFound:
        return False
    return True


def schedules(options: Options, *, now: datetime | None = None) -> Plan[list[Schedule]]:
    """See `Queue.schedules` (admin)."""
    return exchange(options, Calls.schedules(now=now))


def get_schedule(options: Options, name: str, *, now: datetime | None = None) -> Plan[Schedule]:
    """See `Queue.get_schedule` (admin)."""
    return exchange(options, Calls.get_schedule(name, now=now))


def run_schedule_now(options: Options, name: str, *, now: datetime | None = None) -> Plan[int]:
    """See `Queue.run_schedule_now` (admin)."""
    return exchange(options, Calls.run_schedule_now(name, now=now))


class Method(Generic[P, T]):
    """One entry of `Methods`: a plan that `Client` runs as a method returning its result, and
    `AsyncClient` as a coroutine method. The overloads tell the type checker which is which;
    at run time each class holds a real function made by its `bind` (`Methods.__init_subclass__`).
    """

    def __init__(self, plan: Callable[Concatenate[Options, P], Plan[T]], **renames: str) -> None:
        self.plan = plan
        self.renames = renames  # old keyword -> new, still accepted (`workclaim._deprecated`)

    @overload
    def __get__(self, client: Client, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, client: AsyncClient, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    def __get__(self, client: object, owner: type[Any]) -> Any:
        if client is None:
            return self
        raise TypeError(f"{owner.__name__} does not subclass Methods with a bind= of its own")


Bind = Callable[[Callable[..., Plan[Any]]], Callable[..., Any]]


class Methods:
    """The public methods of both clients, each listed once. A subclass names how it runs a plan:
    `class Client(Methods, bind=...)`, where `bind(plan)` returns the method's function."""

    def __init_subclass__(cls, *, bind: Bind | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if bind is None:
            return
        for name, entry in vars(Methods).items():
            if isinstance(entry, Method):
                method = bind(entry.plan)
                if entry.renames:
                    method = renamed(**entry.renames)(method)
                describe(method, entry.plan, cls.__name__)
                setattr(cls, name, method)

    migrate = Method(migrate)
    enqueue = Method(enqueue)
    enqueue_many = Method(enqueue_many)
    claim = Method(claim, **CLAIM_RENAMES)
    heartbeat = Method(heartbeat)
    complete = Method(complete)
    release = Method(release)
    fail = Method(fail)
    get = Method(get)
    complete_and_claim = Method(complete_and_claim, **CLAIM_RENAMES)
    history = Method(history)
    items = Method(items)
    queues = Method(queues)
    stats = Method(stats)
    cancel = Method(cancel)
    requeue = Method(requeue)
    purge = Method(purge)
    set_policy = Method(set_policy)
    policy = Method(policy)
    pause = Method(pause)
    resume = Method(resume)
    live_leases_by_group = Method(live_leases_by_group)
    schedule = Method(schedule)
    unschedule = Method(unschedule)
    schedules = Method(schedules)
    get_schedule = Method(get_schedule)
    run_schedule_now = Method(run_schedule_now)


def describe(method: Callable[..., Any], plan: Callable[..., Any], owner: str) -> None:
    """Give `method`, made from `plan` for class `owner`, the plan's name, docstring and
    signature (with `self` where the plan takes `options`), for `help()` and `inspect`."""
    method.__name__ = plan.__name__
    method.__qualname__ = f"{owner}.{plan.__name__}"
    method.__doc__ = plan.__doc__
    signature = inspect.signature(plan)
    first, *rest = signature.parameters.values()
    self = first.replace(name="self", annotation=inspect.Parameter.empty)
    returns = signature.return_annotation  # "Plan[int]": the method returns (or awaits) int
    if isinstance(returns, str) and returns.startswith("Plan[") and returns.endswith("]"):
        returns = returns[len("Plan[") : -1]
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self, *rest], return_annotation=returns
    )
