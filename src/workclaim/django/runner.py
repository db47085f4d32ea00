"""The worker's handler for Django task items: find the task by import path, run it with its
arguments (and its context when it takes one), return its value as the item's result.

Django expects each unit of work to start and end with `close_old_connections()` (what a
request does): a connection past `CONN_MAX_AGE` or left broken by the task is closed, not
handed to the next task on the same thread.
"""

from __future__ import annotations

from typing import Any

from django.db import close_old_connections
from django.utils import timezone
from django.utils.module_loading import import_string

from workclaim.django._compat import Task, TaskContext, TaskResult, TaskResultStatus
from workclaim.tasks.envelope import Call, decode_call
from workclaim.worker import Context


class NotADjangoTask(Exception):
    """The item's payload is not a task call, or names no importable Django task: it fails
    like any error and goes to `dead` after its attempts, never loops."""


def load_task(call: Call) -> Task[Any, Any]:
    """The `Task` object the call names (the module-level name `@task` bound)."""
    try:
        task = import_string(call.task)
    except ImportError as exc:
        raise NotADjangoTask(f"cannot import task {call.task!r}: {exc}") from exc
    if not isinstance(task, Task):
        raise NotADjangoTask(f"{call.task!r} is not a Django task (decorate it with @task)")
    return task


def run_task(ctx: Context) -> Any:
    """The `Worker` handler that runs one Django task item."""
    call = decode_call(ctx.lease.payload)
    if call is None:
        raise NotADjangoTask(f"item {ctx.lease.id}'s payload is not a task call")
    task = load_task(call)
    args, kwargs = list(call.args), dict(call.kwargs)
    close_old_connections()
    try:
        if not task.takes_context:
            return task.call(*args, **kwargs)
        return task.call(_context(task, ctx, args, kwargs), *args, **kwargs)
    finally:
        close_old_connections()


def _context(
    task: Task[Any, Any], ctx: Context, args: list[Any], kwargs: dict[str, Any]
) -> TaskContext[Any, Any]:
    """The `TaskContext` of a task that takes one: its result as RUNNING, `attempt` from the
    lease (1 for the first execution)."""
    now = timezone.now()
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=str(ctx.lease.id),
        status=TaskResultStatus.RUNNING,
        enqueued_at=None,
        started_at=now,
        finished_at=None,
        last_attempted_at=now,
        args=args,
        kwargs=kwargs,
        backend=task.backend,
        errors=[],
        worker_ids=[ctx.lease.worker] * ctx.attempt,
    )
    return TaskContext(task_result=result)
