"""The SQLite backend: the embedded default, one database file shared by threads and processes.

This module holds the verbs; the connections, their URL options and the transaction runners are
in connection.py, driver errors are translated in errors.py, rows become values in rows.py, the
schema is in schema.py (and migrations/), the wake-up poller in listener.py, flow control in
flow.py and schedules in schedules.py.

The attempt history is written by a trigger (migrations/0002_history.sql) fired by the
`last_event` column that every state-changing statement sets, so the event is part of the very
statement that makes the change. A write that is one statement (complete, heartbeat, release,
fail, cancel) therefore runs as one autocommit statement, which SQLite makes atomic, instead of
BEGIN IMMEDIATE + statement + COMMIT.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from workclaim._time import from_micros, seconds_to_micros, to_micros
from workclaim.backends import _rows as rows
from workclaim.backends import _verbs as verbs
from workclaim.backends._queryfile import load_queries
from workclaim.backends.base import Backend, NewItem, NewSchedule
from workclaim.backends.sqlite import flow, schema
from workclaim.backends.sqlite import schedules as sched
from workclaim.backends.sqlite.connection import Connections
from workclaim.backends.sqlite.listener import Listener
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

_PACKAGE = schema.PACKAGE
Q = load_queries(_PACKAGE, "queries.sql")
REAP_LIMIT = 100


class SqliteBackend(Connections):
    """Storage in one SQLite database; see connection.py for the URL options."""

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self._wakeup = Wakeup(on_first_waiter=self._start_listener)
        self._listener: Listener | None = None

    # -- schema ----------------------------------------------------------------------------
    def migrate(self) -> None:
        self._write(lambda conn, _now_us: schema.migrate(conn))

    def verify_schema(self) -> None:
        schema.verify(self._read(schema.version))

    # -- time ------------------------------------------------------------------------------
    def store_now(self) -> datetime:
        return from_micros(self._now(None))

    # -- producing -------------------------------------------------------------------------
    def enqueue(
        self, queue: str, items: Sequence[NewItem], *, now: datetime | None = None
    ) -> list[int]:
        ids = self._write(lambda conn, now_us: insert_items(conn, queue, items, now_us), now)
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
        claimed = self._write(
            lambda c, now_us: self._take(c, queues, worker, lease_seconds, limit, now_us), now
        )
        return rows.leases(claimed, worker, lease_seconds)

    @staticmethod
    def _take(
        conn: sqlite3.Connection,
        queues: Sequence[str],
        worker: str,
        lease_seconds: float,
        limit: int,
        now_us: int,
    ) -> list[tuple[Any, ...]]:
        """The claim's statements inside its transaction: reap a bounded batch of expired
        leases, lease up to `limit` items (by flow.py when a queue is managed: a policy, a pause
        or groups), advance the token counter past the tokens given."""
        params: dict[str, Any] = {
            "now": now_us,
            "worker": worker,
            "lease_us": seconds_to_micros(lease_seconds),
            "limit": limit,
        }
        if len(queues) == 1:
            sql, probe = Q["claim_one_queue"], Q["probe_one"]
            params["queue"] = queues[0]
        else:
            sql, probe = Q["claim_many_queues"], Q["probe_many"]
            params["queues"] = json.dumps(list(queues))
        expired, managed = conn.execute(probe, params).fetchone()
        if expired:
            queues_json = params.get("queues") or json.dumps(list(queues))
            reap = {"now": now_us, "limit": REAP_LIMIT, "queues": queues_json}
            conn.execute(Q["reap_expired"], reap)
        if managed:
            claimed = flow.take(conn, queues, worker, params["lease_us"], limit, now_us)
        else:
            claimed = conn.execute(sql, params).fetchall()
        if claimed:
            conn.execute(Q["advance_token"], {"n": len(claimed)})
        return claimed

    def _ended(self, lease: Lease, op: str) -> str:
        """After a fenced write changed nothing: the stored outcome if this is a repeat of the
        call that ended this very lease, else `LeaseLost`."""
        row = self._read(lambda c: c.execute(Q["lease_end"], {"id": lease.id}).fetchone())
        return verbs.ended(row, lease, op)

    def heartbeat(
        self, lease: Lease, *, extend_seconds: float | None, now: datetime | None = None
    ) -> Lease:
        params = verbs.fence(lease)
        params["extend_us"] = verbs.micros_or_none(extend_seconds)
        changed = self._write_one(Q["heartbeat"], params, now)
        if not changed:
            raise LeaseLost(lease.id, lease.token)
        return replace(lease, expires_at=from_micros(changed[0][0]))

    def complete(self, lease: Lease, *, result: str | None, now: datetime | None = None) -> None:
        params = verbs.fence(lease)
        params["result"] = result
        changed = self._write_one(Q["complete"], params, now)
        if not changed:
            self._ended(lease, "complete")
        elif changed[0][0]:  # a managed queue: the completion freed a slot
            self._wakeup.notify()

    def release(self, lease: Lease, *, delay_seconds: float, now: datetime | None = None) -> None:
        params = verbs.fence(lease)
        params["delay_us"] = seconds_to_micros(delay_seconds)
        if not self._write_one(Q["release"], params, now):
            self._ended(lease, "release")
            return
        self._wakeup.notify()

    def fail(
        self,
        lease: Lease,
        *,
        error: str,
        retry_delay: float | None,
        now: datetime | None = None,
    ) -> Status:
        params = verbs.fence(lease)
        params["error"] = error
        params["retry_us"] = verbs.micros_or_none(retry_delay)
        changed = self._write_one(Q["fail"], params, now)
        if not changed:
            return Status(self._ended(lease, "fail"))
        status = Status(changed[0][0])
        if status is Status.QUEUED or changed[0][1]:  # an item to claim, or a freed slot
            self._wakeup.notify()
        return status

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
        complete, lease_end = Q["complete"], Q["lease_end"]

        freed = False  # whether a completion freed a slot of a managed queue

        def run(conn: sqlite3.Connection, now_us: int) -> tuple[list[bool], list[tuple[Any, ...]]]:
            nonlocal freed
            flags: list[bool] = []
            for lease, result in done:
                params = verbs.fence(lease)
                params["result"] = result
                changed = conn.execute(complete, params).fetchall()
                if changed:
                    flags.append(True)
                    freed = freed or bool(changed[0][0])
                    continue
                row = conn.execute(lease_end, {"id": lease.id}).fetchone()
                flags.append(verbs.is_repeat(row, lease, "complete"))
            if limit <= 0:
                return flags, []
            return flags, self._take(conn, queues, worker, lease_seconds, limit, now_us)

        flags, claimed = self._write(run, now)
        if freed:
            self._wakeup.notify()
        return flags, rows.leases(claimed, worker, lease_seconds)

    # -- inspection and housekeeping -------------------------------------------------------
    def get(self, item_id: int) -> Item | None:
        row = self._read(lambda c: c.execute(Q["get_item"], {"id": item_id}).fetchone())
        return None if row is None else rows.item(row)

    def history(
        self, item_id: int, *, limit: int, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent] | None:
        sql = Q["history_newest" if newest_first else "history"]
        params = {"id": item_id, "limit": limit, "start": start}

        def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]] | None:
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                events = conn.execute(sql, params).fetchall()
                if events or conn.execute(Q["item_exists"], {"id": item_id}).fetchone():
                    return events
                return None
            finally:
                conn.execute("COMMIT")

        events = self._read(run)
        return None if events is None else [rows.event(r) for r in events]

    def items(
        self, queue: str, status: Status, *, limit: int, after_id: int | None = None
    ) -> list[Item]:
        params = {
            "queue": queue,
            "limit": limit,
            "after": 0 if after_id is None else after_id,
        }
        sql = Q[f"items_{status}"]
        found = self._read(lambda c: c.execute(sql, params).fetchall())
        return [rows.item(row) for row in found]

    def queues(self) -> list[str]:
        names = self._read(lambda c: c.execute(Q["queues"]).fetchall())
        return [str(row[0]) for row in names]

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        params = {"queue": queue, "now": self._now(now)}
        return verbs.queue_stats(
            queue, self._read(lambda c: c.execute(Q["stats"], params).fetchone())
        )

    def _state_error(
        self, conn: sqlite3.Connection, item_id: int, verb: str
    ) -> WorkclaimStateError:
        row = conn.execute(Q["status_of"], {"id": item_id}).fetchone()
        if row is None:
            return ItemNotFound(item_id)
        return InvalidState(f"cannot {verb} item {item_id}: it is {row[0]}")

    def cancel(self, item_id: int, *, now: datetime | None = None) -> None:
        def run(conn: sqlite3.Connection, now_us: int) -> None:
            if not conn.execute(Q["cancel"], {"id": item_id, "now": now_us}).fetchall():
                raise self._state_error(conn, item_id, "cancel")

        self._write(run, now)

    def requeue(
        self, item_id: int, *, max_attempts: int | None, now: datetime | None = None
    ) -> None:
        def run(conn: sqlite3.Connection, now_us: int) -> None:
            params = {"id": item_id, "now": now_us, "max_attempts": max_attempts}
            try:
                changed = len(conn.execute(Q["requeue"], params).fetchall())
            except sqlite3.IntegrityError as exc:
                raise InvalidState(
                    f"cannot requeue item {item_id}: its dedupe key is held by another live item"
                ) from exc
            if changed == 0:
                raise self._state_error(conn, item_id, "requeue")
            flow.activate_item(conn, item_id)

        self._write(run, now)
        self._wakeup.notify()

    def purge(
        self,
        queue: str | None,
        *,
        older_than_seconds: float,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> int:
        def run(conn: sqlite3.Connection, now_us: int) -> int:
            params = verbs.purge_params(queue, older_than_seconds, limit, now_us, no_limit=-1)
            return int(conn.execute(Q["purge"], params).rowcount)

        return self._write(run, now)

    def next_due(self, queues: Sequence[str], *, now: datetime | None = None) -> datetime | None:
        """See `Backend.next_due`: now while one of the queues' leases has expired unreaped."""
        now_us = self._now(now)
        params = {"queues": json.dumps(list(queues)), "now": now_us}

        def run(conn: sqlite3.Connection) -> int | None:
            if conn.execute(Q["expired_in"], params).fetchone() is not None:
                return now_us
            run_at = conn.execute(Q["next_run_at"], params).fetchone()[0]
            expiry = conn.execute(Q["next_expiry"], params).fetchone()[0]
            return verbs.earliest(run_at, expiry, flow.rate_due(conn, queues, now_us))

        due_us = self._read(run)
        return None if due_us is None else from_micros(due_us)

    # -- wake-ups --------------------------------------------------------------------------
    def wakeup(self) -> Wakeup:
        return self._wakeup

    def _start_listener(self) -> None:
        """Called by the first waiter (under the Wakeup's lock): other processes' commits are
        seen by the `data_version` poller (listener.py); one in-memory database needs none,
        as every write notifies directly."""
        if self.memory:
            return
        self._listener = Listener(self._connect, self._wakeup)
        self._listener.start()

    # -- flow control (flow.py) -------------------------------------------------------------
    def policy(self, queue: str) -> QueuePolicy:
        return self._read(lambda c: flow.read_policy(c, queue))

    def set_policy(self, policy: QueuePolicy) -> QueuePolicy:
        stored = self._write(lambda c, _now_us: flow.set_policy(c, policy))
        self._wakeup.notify()  # a raised limit may free slots
        return stored

    def set_paused(self, queue: str, paused: bool) -> QueuePolicy:
        stored = self._write(lambda c, _now_us: flow.set_paused(c, queue, paused))
        if not paused:
            self._wakeup.notify()
        return stored

    def live_leases_by_group(
        self, queue: str, *, limit: int, now: datetime | None = None
    ) -> list[GroupLeases]:
        params = {"queue": queue, "limit": limit, "now": self._now(now)}
        found = self._read(lambda c: c.execute(flow.F["live_by_group"], params).fetchall())
        return [GroupLeases(grp or None, int(n)) for grp, n in found]

    # -- schedules (schedules.py) -----------------------------------------------------------
    def set_schedule(self, schedule: NewSchedule, *, now: datetime | None = None) -> Schedule:
        stored = self._write(lambda c, now_us: sched.put(c, schedule, now_us), now)
        self._wakeup.notify()  # a scheduler's next slot may have moved
        return stored

    def remove_schedule(self, name: str) -> bool:
        existed = self._write(lambda c, _now_us: sched.remove(c, name))
        self._wakeup.notify()
        return existed

    def schedules(self) -> list[Schedule]:
        return self._read(sched.every)

    def get_schedule(self, name: str) -> Schedule | None:
        return self._read(lambda c: sched.get(c, name))

    def fire_schedule(
        self,
        name: str,
        *,
        version: int,
        slot: datetime,
        item: NewItem,
        now: datetime | None = None,
    ) -> int | None:
        slot_us = to_micros(slot)
        item_id = self._write(
            lambda c, now_us: sched.fire(c, insert_items, name, version, slot_us, item, now_us),
            now,
        )
        if item_id is not None:
            self._wakeup.notify()
        return item_id

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.stop()
        self._close_connections()
        self._wakeup.notify()


def insert_items(
    conn: sqlite3.Connection, queue: str, items: Sequence[NewItem], now_us: int
) -> list[int]:
    """`enqueue`'s statements inside its transaction (also a schedule's slot, schedules.py): a
    live item holding an item's dedupe key is returned instead of a new one; the group and the
    queue's flow-control bookkeeping are kept as for every item."""
    ids: list[int] = []
    if any(item.group is not None for item in items):
        flow.set_grouped(conn, queue)
    managed = flow.is_managed(conn, queue)
    for item in items:
        if item.dedupe_key is not None:
            row = conn.execute(
                Q["find_dedupe"], {"queue": queue, "dedupe_key": item.dedupe_key}
            ).fetchone()
            if row is not None:
                ids.append(int(row[0]))
                continue
        row = conn.execute(
            Q["insert_item"],
            {
                "queue": queue,
                "payload": item.payload,
                "priority": item.priority,
                "run_at": verbs.run_at_us(item, now_us),
                "max_attempts": item.max_attempts,
                "dedupe_key": item.dedupe_key,
                "history": 1 if item.history else 0,
                "now": now_us,
                "grp": item.group or "",
                "flow": 1 if managed else 0,
            },
        ).fetchone()
        ids.append(int(row[0]))
    if managed:
        flow.activate(conn, queue, [item.group or "" for item in items])
    return ids


WorkclaimStateError = ItemNotFound | InvalidState


def _conforms(backend: SqliteBackend) -> Backend:
    """mypy checks here that SqliteBackend meets the Backend protocol."""
    return backend
