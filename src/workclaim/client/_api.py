"""The client's public methods, written once as call plans that both transports run.

Each function here is one method of `Client` and `AsyncClient`: the signature after `options`
is the method's signature and its docstring is the method's docstring. It checks the arguments,
builds the `Call` (`_wire.Calls`) and runs `exchange` (the retry loop); `claim` also asks an
empty claim again until its wait is over. The functions yield requests and pauses instead of
doing I/O, so `_sync.py` and `_async.py` only turn them into methods (`method_of`) and send.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from time import monotonic
from typing import Any

from workclaim.client._wire import Calls, Options, Plan, claim_pause, exchange
from workclaim.models import HistoryEvent, Item, Lease, QueueStats, Status


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
        now=now,
    )
    return (yield from exchange(options, call))


def enqueue_many(
    options: Options,
    queue: str,
    payloads: Iterable[Any],
    *,
    priority: int = 0,
    delay: float = 0.0,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
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
    lease: float = 30.0,
    max: int = 1,
    wait: float = 0.0,
    now: datetime | None = None,
) -> Plan[list[Lease]]:
    """See `Queue.claim`. `worker` may be omitted: the server uses the token's identity.
    A server that caps waits shorter than `wait` is asked again until `wait` is over."""
    call = Calls.claim(queues, worker=worker, lease=lease, max=max, wait=wait, now=now)
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
            queues, worker=worker, lease=lease, max=max, wait=_larger(remaining, 0.0), now=now
        )


def heartbeat(
    options: Options, lease: Lease, *, extend: float | None = None, now: datetime | None = None
) -> Plan[Lease]:
    """See `Queue.heartbeat`."""
    return (yield from exchange(options, Calls.heartbeat(lease, extend=extend, now=now)))


def complete(
    options: Options, lease: Lease, *, result: Any = None, now: datetime | None = None
) -> Plan[None]:
    """See `Queue.complete`."""
    return (yield from exchange(options, Calls.complete(lease, result=result, now=now)))


def release(
    options: Options, lease: Lease, *, delay: float = 0.0, now: datetime | None = None
) -> Plan[None]:
    """See `Queue.release`."""
    return (yield from exchange(options, Calls.release(lease, delay=delay, now=now)))


def fail(
    options: Options,
    lease: Lease,
    error: object,
    *,
    retry: bool = True,
    now: datetime | None = None,
) -> Plan[Status]:
    """See `Queue.fail`."""
    return (yield from exchange(options, Calls.fail(lease, error, retry=retry, now=now)))


def get(options: Options, item_id: int) -> Plan[Item]:
    """See `Queue.get`."""
    return (yield from exchange(options, Calls.get(item_id)))


def complete_and_claim(
    options: Options,
    done: Iterable[Lease | tuple[Lease, Any]],
    queues: str | Sequence[str],
    *,
    worker: str | None = None,
    lease: float = 30.0,
    max: int = 1,
    now: datetime | None = None,
) -> Plan[tuple[list[Lease], list[Lease]]]:
    """See `Queue.complete_and_claim`; `worker` may be omitted (the token's identity).
    Never sent twice."""
    call = Calls.complete_and_claim(done, queues, worker=worker, lease=lease, max=max, now=now)
    return (yield from exchange(options, call))


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
    return (yield from exchange(options, call))


def items(
    options: Options,
    queue: str,
    status: Status | str = Status.QUEUED,
    *,
    limit: int = 100,
    after: int | None = None,
) -> Plan[list[Item]]:
    """See `Queue.items`."""
    return (yield from exchange(options, Calls.items(queue, status, limit=limit, after=after)))


def queues(options: Options) -> Plan[list[str]]:
    """See `Queue.queues` (admin)."""
    return (yield from exchange(options, Calls.queues()))


def stats(options: Options, queue: str, *, now: datetime | None = None) -> Plan[QueueStats]:
    """See `Queue.stats` (needs the admin scope)."""
    return (yield from exchange(options, Calls.stats(queue, now=now)))


def cancel(options: Options, item_id: int, *, now: datetime | None = None) -> Plan[None]:
    """See `Queue.cancel`."""
    return (yield from exchange(options, Calls.cancel(item_id, now=now)))


def requeue(
    options: Options, item_id: int, *, max_attempts: int | None = None, now: datetime | None = None
) -> Plan[None]:
    """See `Queue.requeue` (admin)."""
    call = Calls.requeue(item_id, max_attempts=max_attempts, now=now)
    return (yield from exchange(options, call))


def purge(
    options: Options, queue: str, *, older_than: float, now: datetime | None = None
) -> Plan[int]:
    """See `Queue.purge` (admin)."""
    return (yield from exchange(options, Calls.purge(queue, older_than=older_than, now=now)))


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


def _larger(a: float, b: float) -> float:
    """`max` of two floats (the builtin is shadowed by the `max` argument in `claim`)."""
    return a if a >= b else b
