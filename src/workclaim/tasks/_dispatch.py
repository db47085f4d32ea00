"""The worker side: one runtime handler that runs whichever registered task an item names.

`TaskHandler` is a plain `Worker` handler: it decodes the item's envelope, finds the task, calls
it with the item's arguments (and the `Context` as `ctx` if the function asks for it) and returns
its result, which the runtime stores. Each task's own timeout and backoff reach the runtime
through `limits_for`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from workclaim.models import Lease
from workclaim.tasks._registry import REGISTRY, Registry
from workclaim.tasks._task import CONTEXT_PARAMETER, Task
from workclaim.tasks.envelope import Call, decode_call
from workclaim.worker import Context, Permanent
from workclaim.worker._steering import Limits, bounded


class UnknownTask(LookupError):
    """The item names a task this worker has not registered (retried: another worker, or this
    one after a deploy, may know it; dead after the item's attempts)."""


class TaskHandler:
    """Runs the registered task each item names; pass it to `Worker.run`."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or REGISTRY

    def _resolve(self, lease: Lease) -> tuple[Call, Task[..., object]]:
        call = decode_call(lease.payload)
        if call is None:
            raise Permanent(
                f"item {lease.id} is not a task call: its payload needs the keys task, args and "
                "kwargs (enqueue it with a task's .enqueue)"
            )
        found = self.registry.get(call.task)
        if found is None:
            names = ", ".join(self.registry.names()) or "none"
            raise UnknownTask(
                f"no task named {call.task!r} is registered in this worker; registered: {names}"
            )
        return call, found

    def limits_for(self, lease: Lease) -> Limits | None:
        """The task's backoff, and its timeout for a sync task (an async task's timeout is
        applied in `__call__`, by cancelling it). None (the worker's) for a bad item."""
        try:
            _, found = self._resolve(lease)
        except (Permanent, UnknownTask):
            return None
        timeout = None if found.is_async else found.defaults.timeout
        return Limits(timeout=timeout, backoff=found.defaults.backoff)

    def trace_context(self, lease: Lease) -> Mapping[str, str] | None:
        """The trace context the item's envelope carries (W3C `traceparent`), for the worker's
        handler span; None for an item that is not a task call or carries none."""
        call = decode_call(lease.payload)
        return None if call is None else call.trace

    def __call__(self, ctx: Context) -> Any:
        call, found = self._resolve(ctx.lease)
        kwargs = dict(call.kwargs)
        if found.wants_context:
            kwargs[CONTEXT_PARAMETER] = ctx
        run: Any = found.fn(*call.args, **kwargs)
        if found.is_async:  # a coroutine: run it here, cancelled at the task's timeout
            return asyncio.run(bounded(run, found.defaults.timeout))
        return run
