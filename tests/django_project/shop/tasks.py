"""The test app's tasks, one of each kind the backend must run."""

from __future__ import annotations

import asyncio
from typing import Any

try:
    from django.tasks import TaskContext, task
except ImportError:  # Django 5.2: the backport
    from django_tasks import TaskContext, task  # type: ignore[assignment,no-redef]


@task()
def add(a: int, b: int) -> int:
    return a + b


class OutOfStock(LookupError):
    """A failure of the app's own, to see its class come back in TaskResult.errors."""


@task()
def fail_always(message: str) -> None:
    raise OutOfStock(message)


@task()
async def add_later(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(takes_context=True)
def whoami(context: TaskContext[Any, Any], label: str) -> dict[str, Any]:
    return {"label": label, "id": context.task_result.id, "attempt": context.attempt}


@task()
def touch_database(alias: str) -> int:
    """Open (or reuse) this thread's connection to Django's database `alias`."""
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        return int(cursor.fetchone()[0])
