"""`workclaim worker --tasks myapp.tasks`: import a module, or a package and all its submodules,
so that their `@task` functions register."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from workclaim.errors import ConfigError
from workclaim.tasks._dispatch import TaskHandler
from workclaim.tasks._registry import REGISTRY

DEFAULT_LEASE = 60.0


def import_tasks(name: str) -> list[ModuleType]:
    """Import module `name`; if it is a package, every submodule below it too. A module that
    fails to import is a `ConfigError` naming it and the cause."""
    modules = [_import(name)]
    path = getattr(modules[0], "__path__", None)
    if path is not None:
        for info in pkgutil.walk_packages(path, prefix=f"{name}.", onerror=_walk_error):
            modules.append(_import(info.name))
    return modules


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"cannot import task module {name!r}: {exc}") from exc


def _walk_error(name: str) -> None:
    raise ConfigError(f"cannot import task package {name!r} while looking for tasks")


@dataclass(frozen=True, slots=True)
class TaskWorker:
    """What `workclaim worker --tasks` runs: the handler, its queues, and the longest lease
    the tasks of those queues ask for (heartbeats renew it; it bounds crash recovery)."""

    handler: TaskHandler
    queues: list[str]
    lease_seconds: float


def task_worker(modules: Sequence[str], queues: Sequence[str] = ()) -> TaskWorker:
    """Import the task modules and choose the queues: those given, else every queue a
    registered task names."""
    for name in modules:
        import_tasks(name)
    tasks = [REGISTRY.get(name) for name in REGISTRY.names()]
    chosen = list(queues) or REGISTRY.queues()
    if not chosen:
        raise ConfigError(f"no task is registered by {', '.join(modules)}: nothing to run")
    leases = [t.defaults.lease for t in tasks if t is not None and t.defaults.queue in chosen]
    return TaskWorker(TaskHandler(), chosen, max(leases, default=DEFAULT_LEASE))
