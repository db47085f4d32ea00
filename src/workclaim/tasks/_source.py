"""Where `Task.enqueue` sends items: the source given to `connect` (a module-level default,
like a logging handler: set once at start-up, by the web app or the worker)."""

from __future__ import annotations

import inspect
import threading
from typing import Any

from workclaim.api import AsyncQueueAPI, QueueAPI
from workclaim.errors import ConfigError

_lock = threading.Lock()
_sync: QueueAPI | None = None
_async: AsyncQueueAPI | None = None


def connect(source: QueueAPI | AsyncQueueAPI | None) -> None:
    """Send tasks to `source`: a `Queue` or `Client` (for `enqueue`), an `AsyncQueue` or
    `AsyncClient` (for `aenqueue`); one of each may be connected. `None` forgets both. The
    caller owns the source (opens and closes it)."""
    global _sync, _async
    with _lock:
        if source is None:
            _sync = _async = None
        elif is_async(source):
            _async = source  # type: ignore[assignment]
        else:
            _sync = source  # type: ignore[assignment]


def is_async(source: object) -> bool:
    """Whether `source`'s calls are coroutines (an AsyncQueue or AsyncClient)."""
    return inspect.iscoroutinefunction(getattr(source, "enqueue", None))


def sync_source(given: QueueAPI | None) -> QueueAPI:
    """`given`, else the connected sync source."""
    source = given if given is not None else _sync
    if source is None:
        raise ConfigError(
            "no queue for tasks: call workclaim.tasks.connect(Queue(url)) (or a Client) first"
        )
    return source


def async_source(given: AsyncQueueAPI | None) -> AsyncQueueAPI:
    """`given`, else the connected async source."""
    source: Any = given if given is not None else _async
    if source is None:
        raise ConfigError(
            "no async queue for tasks: call workclaim.tasks.connect(AsyncQueue(url)) first"
        )
    return source  # type: ignore[no-any-return]
