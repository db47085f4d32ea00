"""The worker's handler for Django task items: find the task by import path, run it with its
arguments (and its context when it takes one), return its value as the item's result.

Django expects each unit of work to start and end with `close_old_connections()` (what a
request does): a connection past `CONN_MAX_AGE` or left broken by the task is closed, not
handed to the next task on the same thread. Each execution sends the framework's
`task_started` and `task_finished` signals (Django logs them, error trackers hook them).
"""

from __future__ import annotations

import traceback
from typing import Any

from django.db import close_old_connections
from django.utils import timezone
from django.utils.module_loading import import_string

from workclaim.django._compat import (
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    task_backends,
    task_finished,
    task_started,
)
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


def run_task(ctx: Context, *, backend: str = "default") -> Any:
    """The `Worker` handler that runs one Django task item for the TASKS alias `backend`
    (bind it with functools.partial; `manage.py workclaim_worker` does)."""
    call = decode_call(ctx.lease.payload)
    if call is None:
        raise NotADjangoTask(f"item {ctx.lease.id}'s payload is not a task call")
    task = load_task(call).using(backend=backend, queue_name=ctx.lease.queue)
    result = _running(task, ctx, list(call.args), dict(call.kwargs))
    sender = type(task_backends[backend])
    close_old_connections()
    try:
        task_started.send(sender=sender, task_result=result)
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
        else:
            value = task.call(*result.args, **result.kwargs)
    except Exception as exc:
        _finish(result, TaskResultStatus.FAILED)
        result.errors.append(
            TaskError(
                exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        task_finished.send(sender=sender, task_result=result)  # in the handler: exc_info set
        raise
    else:
        _finish(result, TaskResultStatus.SUCCESSFUL)
        object.__setattr__(result, "_return_value", value)
        task_finished.send(sender=sender, task_result=result)
        return value
    finally:
        close_old_connections()


def _running(
    task: Task[Any, Any], ctx: Context, args: list[Any], kwargs: dict[str, Any]
) -> TaskResult[Any, Any]:
    """The result of this execution as RUNNING: `attempts` (and a context's `attempt`) is the
    lease's attempt, 1 for the first."""
    now = timezone.now()
    return TaskResult(
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


def _finish(result: TaskResult[Any, Any], status: TaskResultStatus) -> None:
    """Mark this execution's result finished (the dataclass is frozen for users, not for us)."""
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
