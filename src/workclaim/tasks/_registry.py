"""The registry: task name -> task, so a worker can find the function an item names."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from workclaim.errors import ConfigError

if TYPE_CHECKING:
    from workclaim.tasks._task import Task


class Registry:
    """The tasks known to this process, by name; a name is registered once."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task[..., object]] = {}
        self._lock = threading.Lock()

    def add(self, task: Task[..., object]) -> None:
        """Register `task`; a second task with the same name is refused (which one should an
        item run?), naming both functions."""
        with self._lock:
            known = self._tasks.get(task.name)
            if known is not None and known.fn is not task.fn:
                raise ConfigError(
                    f"a task named {task.name!r} is already registered "
                    f"({known.fn.__module__}.{known.fn.__qualname__}); give one of them name=..."
                )
            self._tasks[task.name] = task

    def get(self, name: str) -> Task[..., object] | None:
        """The task registered under `name`, or None."""
        with self._lock:
            return self._tasks.get(name)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        with self._lock:
            return sorted(self._tasks)

    def queues(self) -> list[str]:
        """The queues the registered tasks name, sorted."""
        with self._lock:
            return sorted({t.defaults.queue for t in self._tasks.values()})

    def remove(self, name: str) -> None:
        """Forget a task (tests that define tasks in a function)."""
        with self._lock:
            self._tasks.pop(name, None)


REGISTRY = Registry()
