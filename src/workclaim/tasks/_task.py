"""`@task`: a function that runs on a worker, enqueued by name with JSON arguments.

A `Task` keeps the function and its defaults (`TaskOptions`); `options(...)` returns a copy with
some changed for one call site (delay, run_at, dedupe_key, priority, queue, ...), like Celery's
`apply_async` options or procrastinate's `configure`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from workclaim import otel
from workclaim.api import AsyncQueueAPI, QueueAPI
from workclaim.errors import ValidationError
from workclaim.retry import Backoff
from workclaim.tasks._handle import AsyncHandle, Handle
from workclaim.tasks._registry import REGISTRY, Registry
from workclaim.tasks._source import async_source, sync_source
from workclaim.tasks.envelope import check_task_name, encode_call
from workclaim.validation import (
    check_delay,
    check_group,
    check_lease,
    check_max_attempts,
    check_name,
    check_priority,
    check_timeout,
)
from workclaim.worker import Context

P = ParamSpec("P")
R = TypeVar("R")

# One call's arguments for `enqueue_many`: a tuple of positional ones or a dict of keyword ones.
Arguments = tuple[Any, ...] | Mapping[str, Any]

# The parameter a task function names to receive the worker's `Context` (never enqueued).
CONTEXT_PARAMETER = "ctx"


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a task's items are enqueued and run. The first group is set by `@task` (and may be
    changed per call); `delay`, `run_at` and `dedupe_key` only per call, with `options`."""

    queue: str
    priority: int = 0
    max_attempts: int = 5
    lease: float = 60.0
    group: str | None = None
    timeout: float | None = None
    backoff: Backoff | None = None
    delay: float = 0.0
    run_at: datetime | None = None
    dedupe_key: str | None = None

    def __post_init__(self) -> None:
        check_name(self.queue, "queue name")
        check_priority(self.priority)
        check_max_attempts(self.max_attempts)
        check_lease(self.lease)
        check_group(self.group)
        if self.timeout is not None:
            check_timeout(self.timeout)
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise ValidationError(f"backoff must be a workclaim.Backoff, got {self.backoff!r}")
        check_delay(self.delay)
        if self.dedupe_key is not None:
            check_name(self.dedupe_key, "dedupe key")


class Task(Generic[P, R]):
    """A registered function. Call it directly to run it here; `enqueue` to run it on a
    worker (returns a `Handle`), `aenqueue` from async code (an `AsyncHandle`)."""

    def __init__(self, fn: Callable[..., Any], name: str, defaults: TaskOptions) -> None:
        self.fn = fn
        self.name = check_task_name(name)
        self.defaults = defaults
        self.signature = inspect.signature(fn)
        self.wants_context = CONTEXT_PARAMETER in self.signature.parameters
        self.is_async = inspect.iscoroutinefunction(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function here and now (a coroutine for an `async def` task)."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.defaults.queue}>"

    def options(self, **changes: Any) -> Task[P, R]:
        """A copy enqueueing with some options changed (`TaskOptions` fields), e.g.
        `send_email.options(delay=60, dedupe_key="welcome-42").enqueue(...)`."""
        copy: Task[P, R] = Task.__new__(Task)
        copy.__dict__.update(self.__dict__)
        try:
            copy.defaults = dataclasses.replace(self.defaults, **changes)
        except TypeError as exc:
            fields = ", ".join(f.name for f in dataclasses.fields(TaskOptions))
            raise ValidationError(f"unknown task option: {exc}; known: {fields}") from None
        return copy

    # -- producing ---------------------------------------------------------------------------
    def payload(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        trace: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The item payload for a call, once the arguments fit the function's signature
        (`trace`: the W3C trace context to carry to the worker, from `workclaim.otel`)."""
        if CONTEXT_PARAMETER in kwargs and self.wants_context:
            raise ValidationError(f"task {self.name}: `ctx` is given by the worker, not enqueued")
        shown = self.signature.replace(
            parameters=[p for n, p in self.signature.parameters.items() if n != CONTEXT_PARAMETER]
        )
        try:
            shown.bind(*args, **kwargs)
        except TypeError as exc:
            raise ValidationError(f"task {self.name}: {exc}") from None
        return encode_call(self.name, args, kwargs, trace=trace)

    def _enqueue_options(self) -> dict[str, Any]:
        o = self.defaults
        return {
            "priority": o.priority,
            "delay": o.delay,
            "run_at": o.run_at,
            "max_attempts": o.max_attempts,
            "group": o.group,
        }

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        """Store one item calling this task with these (JSON) arguments, on the connected
        source (`tasks.connect`); a non-JSON argument is refused before anything is written."""
        return self.enqueue_on(None, *args, **kwargs)

    def enqueue_on(
        self, source: QueueAPI | None, /, *args: P.args, **kwargs: P.kwargs
    ) -> Handle[R]:
        """`enqueue` on the given source (None: the connected one)."""
        queue = sync_source(source)
        with otel.task_enqueue(self.defaults.queue, self.name) as carrier:
            payload = self.payload(args, kwargs, carrier())
            item_id = queue.enqueue(
                self.defaults.queue,
                payload,
                dedupe_key=self.defaults.dedupe_key,
                **self._enqueue_options(),
            )
            otel.created([item_id])
        return Handle(queue, item_id)

    def enqueue_many(
        self,
        calls: Iterable[Arguments],
        *,
        source: QueueAPI | None = None,
    ) -> list[Handle[R]]:
        """Store one item per call, all or none: a tuple is a call's positional arguments, a
        dict its keyword arguments (`[("a@x",), {"to": "b@x"}]`)."""
        queue = sync_source(source)
        with otel.task_enqueue(self.defaults.queue, self.name) as carrier:
            payloads = self._payloads(calls, carrier())
            ids = queue.enqueue_many(self.defaults.queue, payloads, **self._enqueue_options())
            otel.created(ids)
        return [Handle(queue, i) for i in ids]

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> AsyncHandle[R]:
        """`enqueue` from async code, on the connected async source."""
        queue = async_source(None)
        with otel.task_enqueue(self.defaults.queue, self.name) as carrier:
            payload = self.payload(args, kwargs, carrier())
            item_id = await queue.enqueue(
                self.defaults.queue,
                payload,
                dedupe_key=self.defaults.dedupe_key,
                **self._enqueue_options(),
            )
            otel.created([item_id])
        return AsyncHandle(queue, item_id)

    async def aenqueue_many(
        self,
        calls: Iterable[Arguments],
        *,
        source: AsyncQueueAPI | None = None,
    ) -> list[AsyncHandle[R]]:
        """`enqueue_many` from async code."""
        queue = async_source(source)
        with otel.task_enqueue(self.defaults.queue, self.name) as carrier:
            payloads = self._payloads(calls, carrier())
            ids = await queue.enqueue_many(self.defaults.queue, payloads, **self._enqueue_options())
            otel.created(ids)
        return [AsyncHandle(queue, i) for i in ids]

    def _payloads(
        self, calls: Iterable[Arguments], trace: Mapping[str, str] | None = None
    ) -> list[Any]:
        if self.defaults.dedupe_key is not None:
            raise ValidationError("enqueue_many takes no dedupe_key (one key names one item)")
        out = []
        for n, call in enumerate(calls):
            if isinstance(call, tuple):
                out.append(self.payload(call, {}, trace))
            elif isinstance(call, Mapping):
                out.append(self.payload((), call, trace))
            else:
                raise ValidationError(
                    f"task {self.name}: call #{n} must be a tuple of positional arguments or a "
                    f"dict of keyword arguments, got {type(call).__name__}"
                )
        return out


class Decorator:
    """What `@task(...)` with options returns: applied to a function, registers it.

    The overloads give a task the types `enqueue` and `result` really have: an `async def`
    task's result is what its coroutine returns, and a leading `ctx: Context` parameter is
    given by the worker, so it is not part of `enqueue`'s signature."""

    def __init__(self, name: str | None, defaults: TaskOptions, registry: Registry) -> None:
        self.name = name
        self.defaults = defaults
        self.registry = registry

    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], Awaitable[R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    def __call__(self, fn: Callable[..., Any], /) -> Task[Any, Any]:
        made: Task[Any, Any] = Task(
            fn, self.name or f"{fn.__module__}.{fn.__qualname__}", self.defaults
        )
        self.registry.add(made)
        return made


@overload
def task(fn: Callable[Concatenate[Context, P], Awaitable[R]], /) -> Task[P, R]: ...
@overload
def task(fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...
@overload
def task(fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...
@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(
    *,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int = 5,
    lease: float = 60.0,
    group: str | None = None,
    name: str | None = None,
    timeout: float | None = None,
    backoff: Backoff | None = None,
    registry: Registry | None = None,
) -> Decorator: ...
def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int = 5,
    lease: float = 60.0,
    group: str | None = None,
    name: str | None = None,
    timeout: float | None = None,
    backoff: Backoff | None = None,
    registry: Registry | None = None,
) -> Task[Any, Any] | Decorator:
    """Turn a function (sync or `async def`) into a registered `Task`, named `module.qualname`
    unless `name` is given. `timeout` bounds one run, `backoff` spaces its retries (None: the
    store's), `max_attempts` counts every run, `lease` is the lease the worker asks for."""
    defaults = TaskOptions(
        queue=queue,
        priority=priority,
        max_attempts=max_attempts,
        lease=lease,
        group=group,
        timeout=timeout,
        backoff=backoff,
    )
    decorator = Decorator(name, defaults, registry or REGISTRY)
    return decorator if fn is None else decorator(fn)
