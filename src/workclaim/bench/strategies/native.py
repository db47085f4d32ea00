"""`skip-locked`: workclaim's own `Queue.claim` on each backend, the production path.

PostgreSQL `FOR UPDATE SKIP LOCKED`, SQLite's one write-locked statement, the Redis script,
MariaDB's `SKIP LOCKED` transaction: the spike's "database transaction" approach done right.
Every run uses its own queue name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workclaim._time import to_micros
from workclaim.bench.strategies.base import EMPTY, ClaimResult, Grant, Target, strip_query
from workclaim.config import Settings
from workclaim.models import Lease, Status
from workclaim.queue import Queue

# Retention off: the bench reads every item's final state after the run.
BENCH_SETTINGS = Settings(retention_seconds=0, max_attempts=1_000)


def queue_name(target: Target, run: int) -> str:
    """The queue of one run of one bench row."""
    return f"{target.tag}-r{run}"


def _grant(lease: Lease) -> Grant:
    return Grant(
        item_id=lease.id,
        token=lease.token,
        lease_seconds=lease.lease_seconds,
        expires_at_us=to_micros(lease.expires_at),
        handle=lease,
    )


class NativeWorker:
    """A worker's side of `skip-locked`: one `Queue` (its own connection) per process."""

    supports_leases = True

    def __init__(self, target: Target) -> None:
        self.target = target
        self.queue = Queue(target.url, settings=BENCH_SETTINGS)

    def claim(self, run: int, *, worker: str, limit: int, lease: float, wait: float) -> ClaimResult:
        leases = self.queue.claim(
            queue_name(self.target, run), worker=worker, lease_seconds=lease, limit=limit, wait=wait
        )
        if not leases:
            return EMPTY
        return ClaimResult("claimed", [_grant(lease) for lease in leases])

    def complete(self, grant: Grant) -> None:
        self.queue.complete(grant.handle)

    def heartbeat(self, grant: Grant, extend: float) -> Grant:
        return _grant(self.queue.heartbeat(grant.handle, extend=extend))

    def release(self, grant: Grant) -> None:
        self.queue.release(grant.handle)

    def held_by_me(self, grant: Grant, worker: str) -> bool:
        item = self.queue.get(grant.item_id)
        return item.status is Status.CLAIMED and item.worker == worker

    def pending(self, run: int) -> int:
        stats = self.queue.stats(queue_name(self.target, run))
        return stats.queued + stats.claimed

    def close(self) -> None:
        self.queue.close()


class NativeAdmin:
    """The coordinator's side of `skip-locked`: enqueue per run, read final states, purge."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.queue = Queue(target.url, settings=BENCH_SETTINGS)
        self._runs: set[int] = set()

    def add_items(self, run: int, count: int) -> list[int]:
        self._runs.add(run)
        return self.queue.enqueue_many(
            queue_name(self.target, run), ({"n": i} for i in range(count))
        )

    def final_state(self, run: int, ids: Sequence[int]) -> dict[int, str]:
        return {i: str(self.queue.get(i).status) for i in ids}

    def settings(self) -> dict[str, Any]:
        backend = self.queue.backend
        info: dict[str, Any] = {"store": type(backend).__name__}
        for name in ("synchronous", "busy_timeout_ms"):
            if hasattr(backend, name):
                info[name] = getattr(backend, name)
        return info

    def close(self) -> None:
        try:
            for run in sorted(self._runs):
                self.queue.purge(queue_name(self.target, run), older_than=0)
        finally:
            self.queue.close()
            drop_owned(self.target)


def drop_owned(target: Target) -> None:
    """Drop the PostgreSQL schema, MariaDB database or Redis keys the bench created for this row,
    and only those."""
    database = target.options.get("drop_mariadb_database")
    if database:
        from workclaim.bench.strategies.mariadb_db import drop_database

        drop_database(target.url, database)
    schema = target.options.get("drop_postgres_schema")
    if schema:
        import psycopg

        url = strip_query(target.url, "schema", "pool_size")
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    prefix = target.options.get("drop_redis_prefix")
    if prefix:
        from workclaim.bench.strategies.redis_lock import connect_redis, delete_matching

        client = connect_redis(target.url)
        try:
            delete_matching(client, f"{prefix}:*")
        finally:
            client.close()
