"""The claim strategies the bench races, by name, and where each can run.

Only `skip-locked` is a production path (it is `Queue.claim`); the others reproduce the spike's
approaches on its own simple table so their failure modes can be measured, never shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from workclaim.bench.strategies.base import (
    AdminSide,
    ClaimResult,
    Grant,
    Target,
    WorkerSide,
)

__all__ = [
    "STRATEGIES",
    "AdminSide",
    "ClaimResult",
    "Grant",
    "StrategyInfo",
    "Target",
    "WorkerSide",
    "open_admin",
    "open_worker",
]


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """A strategy: the backends it runs on, whether it needs Redis next to the SQL store, and
    whether it is expected to be correct (only `naive` is not)."""

    name: str
    backends: tuple[str, ...]
    needs_redis: bool
    correct: bool
    summary: str


STRATEGIES: dict[str, StrategyInfo] = {
    info.name: info
    for info in (
        StrategyInfo(
            "skip-locked",
            ("sqlite", "postgres", "redis", "mariadb"),
            False,
            True,
            "workclaim's own claim: one atomic statement or script",
        ),
        StrategyInfo(
            "select-then-update",
            ("sqlite", "postgres", "mariadb"),
            False,
            True,
            "read a candidate, guarded UPDATE, row-count check, retry on a lost race",
        ),
        StrategyInfo(
            "optimistic",
            ("sqlite", "postgres", "mariadb"),
            False,
            True,
            "version column + compare-and-set over several candidates, bounded retries",
        ),
        StrategyInfo(
            "redis-lock",
            ("sqlite", "postgres", "mariadb"),
            True,
            True,
            "SET NX PX lock per item in Redis in front of the SQL row",
        ),
        StrategyInfo(
            "naive",
            ("sqlite", "postgres", "mariadb"),
            False,
            False,
            "read a candidate, UPDATE with no guard (wrong on purpose)",
        ),
    )
}


def _worker_factories() -> dict[str, Callable[[Target], WorkerSide]]:
    from workclaim.bench.strategies.naive import NaiveWorker
    from workclaim.bench.strategies.native import NativeWorker
    from workclaim.bench.strategies.optimistic import OptimisticWorker
    from workclaim.bench.strategies.redis_lock import RedisLockWorker
    from workclaim.bench.strategies.select_then_update import SelectThenUpdateWorker

    return {
        "skip-locked": NativeWorker,
        "select-then-update": SelectThenUpdateWorker,
        "optimistic": OptimisticWorker,
        "redis-lock": RedisLockWorker,
        "naive": NaiveWorker,
    }


def open_worker(target: Target) -> WorkerSide:
    """A worker process's side of `target.strategy`, with its own connection(s)."""
    return _worker_factories()[target.strategy](target)


def open_admin(target: Target) -> AdminSide:
    """The coordinator's side of `target.strategy`: creates what the row needs."""
    if target.strategy == "skip-locked":
        from workclaim.bench.strategies.native import NativeAdmin

        return NativeAdmin(target)
    from workclaim.bench.strategies.table import TableAdmin

    admin = TableAdmin(target)
    if STRATEGIES[target.strategy].needs_redis:
        from workclaim.bench.strategies.redis_lock import RedisLockAdmin

        return RedisLockAdmin(admin, target)
    return admin
