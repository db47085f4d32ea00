"""Tasks: functions that run on a worker, enqueued by name with JSON arguments.

    from workclaim import Queue, tasks

    @tasks.task(queue="emails", max_attempts=5)
    def send_email(to: str, subject: str) -> str:
        ...
        return "sent"

    tasks.connect(Queue("sqlite:///work.db"))
    handle = send_email.enqueue("a@example.org", subject="hi")
    handle.result(timeout=30)          # "sent", once `workclaim worker --tasks myapp` ran it

A thin layer over `Queue` and the worker runtime: an item's payload is the envelope of
`workclaim.tasks.envelope`, and `TaskHandler` is an ordinary runtime handler. See docs/tasks.md.
"""

from workclaim.tasks._dispatch import TaskHandler, UnknownTask
from workclaim.tasks._handle import AsyncHandle, Handle, TaskFailed
from workclaim.tasks._registry import REGISTRY, Registry
from workclaim.tasks._source import connect
from workclaim.tasks._task import CONTEXT_PARAMETER, Task, TaskOptions, task
from workclaim.tasks.envelope import Call, decode_call, encode_call
from workclaim.tasks.loading import import_tasks

__all__ = [
    "CONTEXT_PARAMETER",
    "REGISTRY",
    "AsyncHandle",
    "Call",
    "Handle",
    "Registry",
    "Task",
    "TaskFailed",
    "TaskHandler",
    "TaskOptions",
    "UnknownTask",
    "connect",
    "decode_call",
    "encode_call",
    "import_tasks",
    "task",
]
