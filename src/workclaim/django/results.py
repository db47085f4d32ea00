"""A workclaim item seen as a Django `TaskResult`: statuses, times, attempts, errors, value.

Statuses: `queued` is READY (new, or waiting for its next attempt), `claimed` is RUNNING, `done`
is SUCCESSFUL, and `dead` and `cancelled` are FAILED (Django's "raised an exception, or was
unable to start"). Times and worker ids come from the item's attempt history when its queue
keeps one (the default), else from the item row alone.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from workclaim.django._compat import Task, TaskError, TaskResult, TaskResultStatus
from workclaim.models import EventKind, HistoryEvent, Item, Status

STATUSES = {
    Status.QUEUED: TaskResultStatus.READY,
    Status.CLAIMED: TaskResultStatus.RUNNING,
    Status.DONE: TaskResultStatus.SUCCESSFUL,
    Status.DEAD: TaskResultStatus.FAILED,
    Status.CANCELLED: TaskResultStatus.FAILED,
}

# The last line of a Python traceback names the exception: `package.module.Name: message`
# (`Name: message` for builtins). The worker stores `Name: message` first, then the traceback.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def exception_path(error: str) -> str:
    """The import path of the exception a stored error text describes (`builtins.ValueError`
    when the traceback does not name its module); `builtins.Exception` when unreadable."""
    lines = error.splitlines()
    short = _EXCEPTION_LINE.match(lines[0]) if lines else None
    if short is None:
        return "builtins.Exception"
    name = short.group(1)
    for line in reversed(lines):
        found = _EXCEPTION_LINE.match(line)
        if found and found.group(1).endswith(f".{name}"):
            return found.group(1)
    return name if "." in name else f"builtins.{name}"


def task_result(
    task: Task[..., Any],
    item: Item,
    history: list[HistoryEvent],
    *,
    args: list[Any],
    kwargs: dict[str, Any],
    backend: str,
) -> TaskResult[..., Any]:
    """The `TaskResult` of one item of a Django task (`history`: its events, oldest first)."""
    claims = [event for event in history if event.kind is EventKind.CLAIMED]
    failures = [event.error for event in history if event.kind is EventKind.FAILED and event.error]
    if not history and item.last_error:
        failures = [item.last_error]
    started: datetime | None
    last: datetime | None
    if claims:
        workers = [event.worker or "" for event in claims]
        started, last = claims[0].at, claims[-1].at
    else:
        workers = [item.worker or ""] * item.attempts
        started = last = item.updated_at if item.attempts else None
    status = STATUSES[item.status]
    finished = item.updated_at if item.status.finished else None
    result = TaskResult(
        task=task,
        id=str(item.id),
        status=status,
        enqueued_at=item.created_at,
        started_at=started,
        finished_at=finished,
        last_attempted_at=last,
        args=args,
        kwargs=kwargs,
        backend=backend,
        errors=[
            TaskError(exception_class_path=exception_path(text), traceback=text)
            for text in failures
        ],
        worker_ids=workers,
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", item.result)
    return result
