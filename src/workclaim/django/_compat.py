"""Django's Tasks framework from wherever it lives: `django.tasks` (Django 6, Python 3.12+) or
the `django_tasks` backport (Django 4.2/5.2). Both define the same names; only the exception
for an invalid task differs (`InvalidTask` in Django 6.1, `InvalidTaskError` before), so the
rest of `workclaim.django` imports the framework from here and runs on either."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typed against Django 6's names (django-stubs); the backport's are the same
    from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started

    FRAMEWORK = "django.tasks"
else:

    def _first(*names: str) -> ModuleType:
        for name in names:
            try:
                return importlib.import_module(name)
            except ImportError:
                continue
        raise ImportError(
            "workclaim.django needs Django's Tasks framework: Django 6 (django.tasks) or the "
            "django-tasks backport; install workclaim[django]"
        )

    _root = _first("django.tasks", "django_tasks")
    FRAMEWORK = _root.__name__
    _base = importlib.import_module(f"{FRAMEWORK}.base")
    _exceptions = importlib.import_module(f"{FRAMEWORK}.exceptions")
    _signals = importlib.import_module(f"{FRAMEWORK}.signals")
    BaseTaskBackend = importlib.import_module(f"{FRAMEWORK}.backends.base").BaseTaskBackend
    Task = _base.Task
    TaskContext = _base.TaskContext
    TaskError = _base.TaskError
    TaskResult = _base.TaskResult
    TaskResultStatus = _base.TaskResultStatus
    task_backends = _root.task_backends
    InvalidTask = getattr(_exceptions, "InvalidTask", None) or _exceptions.InvalidTaskError
    TaskResultDoesNotExist = _exceptions.TaskResultDoesNotExist
    task_enqueued = _signals.task_enqueued
    task_started = _signals.task_started
    task_finished = _signals.task_finished

__all__ = [
    "FRAMEWORK",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
