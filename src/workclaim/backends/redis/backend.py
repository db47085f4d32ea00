"""The Redis backend: every operation one Lua script, fenced, on the Redis clock, single primary.

This module holds the verbs; the URL options, the pool and the script runners are in
connection.py, the scripts (`scripts/*.lua`) are assembled in lua.py, redis-py errors are
translated in errors.py, replies become values in rows.py, the key layout's version and
migration are in schema.py, and waiting claims are woken by one pub/sub subscriber per backend
(listener.py). See docs/redis.md.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from workclaim._time import from_micros, seconds_to_micros, to_micros
from workclaim.backends.base import Backend, NewItem, NewSchedule
from workclaim.backends.redis import rows, schema
from workclaim.backends.redis.connection import Connections
from workclaim.backends.redis.durability import check_durability, read_durability
from workclaim.backends.redis.keys import key
from workclaim.backends.redis.listener import Listener
from workclaim.backends.wakeup import Wakeup
from workclaim.config import Settings
from workclaim.errors import InvalidState, ItemNotFound, LeaseLost
from workclaim.models import (
    GroupLeases,
    HistoryEvent,
    Item,
    Lease,
    QueuePolicy,
    QueueStats,
    Schedule,
    Status,
)

REAP_LIMIT: Final = 100  # expired leases returned per claim
PROMOTE_LIMIT: Final = 1_000  # due delayed items made ready per queue per claim
PURGE_BATCH: Final = 1_000  # items deleted per purge script when the caller gives no limit


class RedisBackend(Connections):
    """Storage in one Redis primary under a key prefix; see connection.py for the URL."""

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self._wakeup = Wakeup(on_first_waiter=self._start_listener)
        self._listener: Listener | None = None
        self._listener_lock = threading.Lock()
        try:
            durability = self._redis(lambda: read_durability(self._client), idempotent=True)
            check_durability(durability, strict=settings.strict_durability, server=self.server)
        except BaseException:
            self._pool.disconnect()
            raise

    # -- schema ----------------------------------------------------------------------------
    def migrate(self) -> None:
        schema.migrate(self)

    def verify_schema(self) -> None:
        schema.verify(self)

    # -- time ------------------------------------------------------------------------------
    def store_now(self) -> datetime:
        seconds, micros = self._redis(self._client.time, idempotent=True)
        return from_micros(int(seconds) * 1_000_000 + int(micros))

    # -- producing -------------------------------------------------------------------------
    def enqueue(
        self, queue: str, items: Sequence[NewItem], *, now: datetime | None = None
    ) -> list[int]:
        args: list[object] = [queue, len(items)]
        for item in items:
            args += _item_args(item)
        ids = [int(i) for i in self._run("enqueue", now, *args)]
        self._wakeup.notify()
        return ids

    # -- consuming -------------------------------------------------------------------------
    def claim(
        self,
        queues: Sequence[str],
        *,
        worker: str,
        lease_seconds: float,
        limit: int,
        now: datetime | None = None,
    ) -> list[Lease]:
        lease_us = seconds_to_micros(lease_seconds)
        r = self._run(
            "claim",
            now,
            worker,
            lease_us,
            limit,
            REAP_LIMIT,
            PROMOTE_LIMIT,
            len(queues),
            *queues,
        )
        return rows.leases(r, worker, lease_seconds)

    def complete_and_claim(
        self,
        done: Sequence[tuple[Lease, str | None]],
        queues: Sequence[str],
        *,
        worker: str,
        lease_seconds: float,
        limit: int,
        now: datetime | None = None,
    ) -> tuple[list[bool], list[Lease]]:
        args: list[object] = [
            worker,
            seconds_to_micros(lease_seconds),
            limit,
            REAP_LIMIT,
            PROMOTE_LIMIT,
            len(queues),
            *queues,
            len(done),
        ]
        for lease, result in done:
            args += (lease.id, lease.token, "" if lease.worker == worker else lease.worker)
            args.append(result or "")
        flags, flat = self._run("complete_and_claim", now, *args)
        return [flag == "1" for flag in flags], rows.leases(flat, worker, lease_seconds)

    def _fenced(self, name: str, lease: Lease, now: datetime | None, *args: object) -> Any:
        """Run a fenced script (ARGV id, token, worker, *args); `LeaseLost` on reply {0}."""
        reply = self._run(name, now, lease.id, lease.token, lease.worker, *args)
        if int(reply[0]) == 0:
            raise LeaseLost(lease.id, lease.token)
        return reply

    def heartbeat(
        self, lease: Lease, *, extend_seconds: float | None, now: datetime | None = None
    ) -> Lease:
        extend = "" if extend_seconds is None else seconds_to_micros(extend_seconds)
        reply = self._fenced("heartbeat", lease, now, extend)
        return replace(lease, expires_at=from_micros(int(reply[1])))

    def complete(self, lease: Lease, *, result: str | None, now: datetime | None = None) -> None:
        reply = self._fenced("complete", lease, now, "0" if result is None else "1", result or "")
        if len(reply) > 1 and reply[0] == 1:  # a slot of a limited queue is free
            self._wakeup.notify()

    def release(self, lease: Lease, *, delay_seconds: float, now: datetime | None = None) -> None:
        reply = self._fenced("release", lease, now, seconds_to_micros(delay_seconds))
        if int(reply[0]) == 1:
            self._wakeup.notify()

    def fail(
        self,
        lease: Lease,
        *,
        error: str,
        retry_delay: float | None,
        now: datetime | None = None,
    ) -> Status:
        retry = "" if retry_delay is None else seconds_to_micros(retry_delay)
        reply = self._fenced("fail", lease, now, error, retry)
        status = Status(reply[1])
        if int(reply[0]) == 1 and status is Status.QUEUED:
            self._wakeup.notify()
        return status

    # -- inspection and housekeeping -------------------------------------------------------
    def get(self, item_id: int) -> Item | None:
        flat = self._run("get", None, item_id, write=False)
        return rows.item(item_id, flat) if flat else None

    def history(
        self, item_id: int, *, limit: int, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent] | None:
        newest = "1" if newest_first else "0"
        reply = self._run("history", None, item_id, start, limit, newest, write=False)
        if not reply:
            return None
        return [rows.event(item_id, text) for text in reply[1:]]

    def items(
        self, queue: str, status: Status, *, limit: int, after_id: int | None = None
    ) -> list[Item]:
        flat = self._run("items", None, queue, status.value, limit, after_id or 0, write=False)
        return [rows.item(int(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]

    def queues(self) -> list[str]:
        members = self._redis(
            lambda: self._client.smembers(key(self.prefix, "queues")), idempotent=True
        )
        return sorted(members)

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        r = [int(n) for n in self._run("stats", now, queue, write=False)]
        return QueueStats(
            queue=queue,
            queued=r[0],
            claimed=r[1],
            done=r[2],
            dead=r[3],
            cancelled=r[4],
            expired=r[5],
        )

    def _state(self, reply: Any, item_id: int, verb: str) -> None:
        code = int(reply[0])
        if code == 0:
            raise ItemNotFound(item_id)
        if code == 3:
            raise InvalidState(f"cannot {verb} item {item_id}: it is {reply[1]}")
        if code == 4:
            raise InvalidState(
                f"cannot requeue item {item_id}: its dedupe key is held by another live item"
            )

    def cancel(self, item_id: int, *, now: datetime | None = None) -> None:
        self._state(self._run("cancel", now, item_id), item_id, "cancel")

    def requeue(
        self, item_id: int, *, max_attempts: int | None, now: datetime | None = None
    ) -> None:
        reply = self._run("requeue", now, item_id, "" if max_attempts is None else max_attempts)
        self._state(reply, item_id, "requeue")
        self._wakeup.notify()

    def purge(
        self,
        queue: str | None,
        *,
        older_than_seconds: float,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> int:
        older_us = seconds_to_micros(older_than_seconds)
        if now is None:
            now = self.store_now()  # one cutoff for every batch
        total = 0
        while True:
            batch = PURGE_BATCH if limit is None else min(limit - total, PURGE_BATCH)
            if batch <= 0:
                return total
            deleted = int(self._run("purge", now, queue or "", older_us, batch))
            total += deleted
            if deleted < batch:
                return total

    def next_due(self, queues: Sequence[str], *, now: datetime | None = None) -> datetime | None:
        reply = self._run("next_due", now, len(queues), *queues, write=False)
        return from_micros(int(reply[0])) if reply else None

    # -- wake-ups --------------------------------------------------------------------------
    def wakeup(self) -> Wakeup:
        return self._wakeup

    def _start_listener(self) -> None:
        """Called by the first waiter of this process (under the Wakeup's lock), so once, and
        once more in a forked child, whose copy of the parent's listener has no thread."""
        with self._listener_lock:
            if not self._closed:
                self._listener = Listener(
                    self._pool.connection_kwargs,
                    self._pool.connection_class,
                    key(self.prefix, "wakeup"),
                    self._wakeup,
                )
                self._listener.start()

    # -- flow control (policy:<queue>, read by every claim script; see docs/redis.md) -------
    def policy(self, queue: str) -> QueuePolicy:
        return rows.policy(queue, self._run("policy", None, queue, write=False))

    def set_policy(self, policy: QueuePolicy) -> QueuePolicy:
        args: list[object] = [
            policy.queue,
            policy.concurrency or "",
            policy.group_concurrency or "",
        ]
        for rate in (policy.rate, policy.group_rate):
            if rate is None:
                args += ("", "", "")
            else:
                args += (
                    rate.count,
                    max(1, seconds_to_micros(rate.per_seconds)),
                    repr(rate.per_seconds),
                )
        stored = rows.policy(policy.queue, self._run("set_policy", None, *args))
        self._wakeup.notify()
        return stored

    def set_paused(self, queue: str, paused: bool) -> QueuePolicy:
        stored = rows.policy(queue, self._run("set_paused", None, queue, "1" if paused else "0"))
        if not paused:
            self._wakeup.notify()
        return stored

    def live_leases_by_group(
        self, queue: str, *, limit: int, now: datetime | None = None
    ) -> list[GroupLeases]:
        return rows.group_leases(self._run("live_leases", now, queue, limit, write=False))

    # -- schedules (schedule:<name>, schedules; see keys.py) -------------------------------
    def set_schedule(self, schedule: NewSchedule, *, now: datetime | None = None) -> Schedule:
        changed, flat = self._run(
            "set_schedule",
            now,
            schedule.name,
            schedule.queue,
            schedule.cron,
            schedule.timezone,
            schedule.payload,
            schedule.priority,
            "" if schedule.max_attempts is None else schedule.max_attempts,
            schedule.group or "",
            schedule.catch_up,
            "1" if schedule.enabled else "0",
        )
        if int(changed):
            self._wakeup.notify()
        return rows.schedule(schedule.name, flat)

    def remove_schedule(self, name: str) -> bool:
        removed = bool(int(self._run("remove_schedule", None, name)))
        if removed:
            self._wakeup.notify()
        return removed

    def schedules(self) -> list[Schedule]:
        flat = self._run("schedules", None, "", write=False)
        return [rows.schedule(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]

    def get_schedule(self, name: str) -> Schedule | None:
        flat = self._run("schedules", None, name, write=False)
        return rows.schedule(name, flat[1]) if flat else None

    def fire_schedule(
        self,
        name: str,
        *,
        version: int,
        slot: datetime,
        item: NewItem,
        now: datetime | None = None,
    ) -> int | None:
        reply = self._run("fire_schedule", now, name, version, to_micros(slot), *_item_args(item))
        if reply is None:
            return None
        self._wakeup.notify()
        return int(reply)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self._close_connections()
        self._wakeup.notify()


def _item_args(item: NewItem) -> tuple[object, ...]:
    """An item's eight script arguments, as enqueue.lua and fire_schedule.lua read them."""
    return (
        item.payload,
        item.priority,
        "" if item.run_at is None else to_micros(item.run_at),
        seconds_to_micros(item.delay),
        item.max_attempts,
        item.dedupe_key or "",
        "1" if item.history else "0",
        item.group or "",
    )


def _conforms(backend: RedisBackend) -> Backend:
    """mypy checks here that RedisBackend meets the Backend protocol."""
    return backend
