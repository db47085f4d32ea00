"""`redis-lock`: the spike's approach 2, a `SET NX PX` lock per item in Redis in front of the SQL
store; the lock's expiry stands in for the lease.

Read the first unclaimed rows, take the first whose lock `SET NX PX` grants, then mark the row
claimed with a guarded update (without the guard a worker that read the row before it was
finished would take a done item once the lock expired). Two round trips to two stores per claim,
and a lock whose expiry the SQL store knows nothing about.
"""

from __future__ import annotations

from typing import Any

from workclaim.backends._queryfile import load_queries
from workclaim.bench.strategies.base import LOST, ClaimResult, Target, strip_query
from workclaim.bench.strategies.table import PACKAGE, TableWorker, guarded_update
from workclaim.errors import BackendUnavailable, ConfigError

Q = load_queries(PACKAGE, "redis_lock.sql")
CANDIDATES = 4


def lock_prefix(target: Target) -> str:
    """The Redis key prefix of one bench row's locks."""
    return f"workclaim-bench:{target.tag}:lock:"


def connect_redis(url: str | None) -> Any:
    """A redis-py client that answered PING, or `BackendUnavailable`."""
    if not url:
        raise ConfigError("redis-lock needs a Redis URL (--redis or WORKCLAIM_BENCH_REDIS)")
    import redis

    client = redis.Redis.from_url(
        strip_query(url, "prefix", "health_check_interval"),
        socket_timeout=5,
        socket_connect_timeout=5,
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise BackendUnavailable(f"cannot reach Redis: {exc}") from exc
    return client


class RedisLockWorker(TableWorker):
    """A Redis lock per item, then a guarded update of the SQL row."""

    name = "redis-lock"

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.redis = connect_redis(target.redis_url)
        self.prefix = lock_prefix(target)

    def claim(self, run: int, *, worker: str, limit: int, lease: float, wait: float) -> ClaimResult:
        found = self.candidates(run, CANDIDATES)
        if not found:
            return self.empty(wait)
        px = max(1, round(lease * 1000))
        for item_id, version in found:
            if not self._lock(item_id, worker, px):
                continue
            token = guarded_update(self.store, Q, item_id, worker, version)
            if token is not None:
                return self.grant(item_id, token, worker, lease)
        return LOST

    def _lock(self, item_id: int, worker: str, px: int) -> bool:
        import redis

        try:
            return bool(self.redis.set(f"{self.prefix}{item_id}", worker, nx=True, px=px))
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis: {exc}") from exc

    def close(self) -> None:
        try:
            self.redis.close()
        finally:
            super().close()


def drop_locks(target: Target) -> None:
    """Delete this row's lock keys (they expire anyway); only keys under its own prefix."""
    client = connect_redis(target.redis_url)
    try:
        delete_matching(client, f"{lock_prefix(target)}*")
    finally:
        client.close()


def delete_matching(client: Any, pattern: str) -> None:
    """Delete the keys matching `pattern` (a prefix of the bench's own), by SCAN, in batches."""
    keys = list(client.scan_iter(match=pattern, count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])


class RedisLockAdmin:
    """The table admin plus the Redis side: checks Redis is there, drops the locks at the end."""

    def __init__(self, table: Any, target: Target) -> None:
        self.table = table
        self.target = target
        try:
            connect_redis(target.redis_url).close()
        except Exception:
            table.close()
            raise

    def add_items(self, run: int, count: int) -> list[int]:
        return list(self.table.add_items(run, count))

    def final_state(self, run: int, ids: Any) -> dict[int, str]:
        return dict(self.table.final_state(run, ids))

    def settings(self) -> dict[str, Any]:
        return {**self.table.settings(), "redis": "SET NX PX per item"}

    def close(self) -> None:
        try:
            drop_locks(self.target)
        finally:
            self.table.close()
