"""`WorkclaimBackend`: Django's task backend interface over a workclaim `Queue`.

    TASKS = {"default": {"BACKEND": "workclaim.django.WorkclaimBackend",
                         "QUEUES": ["default", "emails"],
                         "OPTIONS": {"url": "postgresql://app@db/app?schema=jobs"}}}

A task call becomes one item of the queue named by the task's `queue_name`, its payload the
shared task envelope (`workclaim.tasks.envelope`) naming the task by import path. Django's
priority (-100..100, higher first) is negated into workclaim's (lower first); `run_after` is the
item's `run_at`; the result id is the item id. On PostgreSQL, inside `transaction.atomic()` on
a psycopg 3 database connection, the item is written through that connection and commits or
rolls back with it; elsewhere it is written at once (docs/django.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils import timezone
from django.utils.module_loading import import_string

from workclaim.backends import TransactionalEnqueue
from workclaim.config import Settings
from workclaim.django._compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from workclaim.django.results import task_result
from workclaim.errors import ItemNotFound, ValidationError, WorkclaimError
from workclaim.queue import Queue
from workclaim.tasks.envelope import decode_call, encode_call
from workclaim.validation import check_name

# OPTIONS keys of the backend itself; every other key is a `Settings` field.
OWN_OPTIONS = frozenset({"url", "database", "transactional"})
SETTINGS_FIELDS = frozenset(f.name for f in fields(Settings))

_queues: dict[tuple[int, str, str], Queue] = {}
_queues_lock = threading.Lock()


def shared_queue(url: str, settings: Settings) -> Queue:
    """One `Queue` per URL and settings in each process: Django makes a backend object per
    thread (and per async context), and a `Queue` is safe to share, pool and all."""
    key = (os.getpid(), url, repr(settings))  # Settings holds mappings: not hashable
    with _queues_lock:
        queue = _queues.get(key)
        if queue is None:
            queue = _queues[key] = Queue(url, settings=settings)
        return queue


def settings_from(options: Mapping[str, Any]) -> Settings:
    """The `Settings` given in OPTIONS (every key but the backend's own)."""
    given = {k: v for k, v in options.items() if k not in OWN_OPTIONS}
    unknown = sorted(set(given) - SETTINGS_FIELDS)
    if unknown:
        raise ImproperlyConfigured(
            f"workclaim: unknown OPTIONS {unknown}; use url, database, transactional or a "
            f"workclaim Settings field ({', '.join(sorted(SETTINGS_FIELDS))})"
        )
    try:
        return Settings(**given)
    except WorkclaimError as exc:
        raise ImproperlyConfigured(f"workclaim OPTIONS: {exc}") from exc


def workclaim_priority(django_priority: int) -> int:
    """Django's priority (higher runs first) as workclaim's (lower runs first)."""
    return -django_priority


class WorkclaimBackend(BaseTaskBackend):
    """Django tasks stored as workclaim items, run by `manage.py workclaim_worker`."""

    supports_defer = True  # run_after is the item's run_at
    supports_async_task = True  # the worker runs coroutine functions to completion
    supports_get_result = True  # results are read back from the store, from any process
    supports_priority = True  # claims take the lowest workclaim priority first

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        url = self.options.get("url")
        if not isinstance(url, str) or not url:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] needs 'url': a workclaim store URL"
            )
        self.url = url
        self.settings = settings_from(self.options)
        self.database: str = self.options.get("database", "default")
        self.transactional = bool(self.options.get("transactional", True))
        for name in self.queues:
            try:
                check_name(name, "queue name")
            except ValidationError as exc:
                raise ImproperlyConfigured(f"TASKS[{alias!r}]['QUEUES']: {exc}") from exc

    @property
    def queue(self) -> Queue:
        """The workclaim queue (opened at first use, shared by the process's threads)."""
        return shared_queue(self.url, self.settings)

    def validate_task(self, task: Task[..., Any]) -> None:
        """Django's checks, and a queue name workclaim accepts."""
        super().validate_task(task)
        try:
            check_name(task.queue_name, "queue name")
        except ValidationError as exc:
            raise InvalidTask(str(exc)) from exc

    def enqueue(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[Any, Any]:
        """Store the call as one item (in the caller's PostgreSQL transaction when there is
        one); arguments that are not JSON are refused here, naming the argument."""
        self.validate_task(task)
        try:
            payload = encode_call(task.module_path, list(args), dict(kwargs))
            item_id = self.queue.enqueue(
                task.queue_name,
                payload,
                priority=workclaim_priority(task.priority),
                run_at=self._run_at(task.run_after),
                connection=self._joined_connection(),
            )
        except ValidationError as exc:
            raise InvalidTask(str(exc)) from exc
        result: TaskResult[Any, Any] = TaskResult(
            task=task,
            id=str(item_id),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=payload["args"],
            kwargs=payload["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        """The result of the item with this id; `TaskResultDoesNotExist` when there is no such
        item, or it is not a Django task of this backend's queues."""
        try:
            item = self.queue.get(int(result_id))
        except (ValueError, TypeError, ItemNotFound, ValidationError) as exc:
            raise TaskResultDoesNotExist(result_id) from exc
        call = decode_call(item.payload)
        if call is None or (self.queues and item.queue not in self.queues):
            raise TaskResultDoesNotExist(result_id)
        try:
            task = import_string(call.task)
        except ImportError as exc:
            raise TaskResultDoesNotExist(f"{result_id}: cannot import {call.task}") from exc
        if not isinstance(task, Task):
            raise TaskResultDoesNotExist(f"{result_id}: {call.task} is not a Django task")
        task = task.using(backend=self.alias, queue_name=item.queue)  # refresh() asks us
        return task_result(
            task,
            item,
            self.queue.history(item.id),
            args=list(call.args),
            kwargs=dict(call.kwargs),
            backend=self.alias,
        )

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _run_at(run_after: datetime | None) -> datetime | None:
        """`run_after` as an aware datetime (naive ones are in Django's current time zone)."""
        if run_after is None or timezone.is_aware(run_after):
            return run_after
        return timezone.make_aware(run_after)

    def _joined_connection(self) -> Any:
        """Django's psycopg connection when the item should join its transaction: the store is
        PostgreSQL, the database is too, and a `transaction.atomic()` block is open."""
        if not self.transactional or not isinstance(self.queue.backend, TransactionalEnqueue):
            return None
        db = connections[self.database]
        if db.vendor != "postgresql" or not db.in_atomic_block:
            return None
        db.ensure_connection()
        raw = db.connection
        import psycopg

        if not isinstance(raw, psycopg.Connection):
            raise ImproperlyConfigured(
                "workclaim joins Django's transaction through psycopg 3; this database uses "
                f"{type(raw).__module__} (install psycopg, or set OPTIONS transactional=False)"
            )
        return raw
