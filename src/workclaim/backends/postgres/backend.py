"""The PostgreSQL backend: workers on many machines sharing one database.

This module holds the verbs; the URL options, deadlines and the pool are in connection.py,
driver errors are translated in errors.py, rows become values in rows.py, the schema and its
migrations are in schema.py (and migrations/), the LISTEN thread in listener.py and the
watchdog for hung calls in deadline.py. The SQL is in queries.sql.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from workclaim._time import seconds_to_micros
from workclaim.backends._flow import policy_of, policy_params
from workclaim.backends._queryfile import load_queries
from workclaim.backends.base import Backend, NewItem, NewSchedule, TransactionalEnqueue
from workclaim.backends.postgres import rows
from workclaim.backends.postgres.connection import Connections
from workclaim.backends.postgres.errors import translate
from workclaim.backends.postgres.listener import Listener, Poller
from workclaim.backends.postgres.schema import PACKAGE, SCHEMA_VERSION, Schema
from workclaim.backends.wakeup import Wakeup
from workclaim.config import Settings
from workclaim.errors import InvalidState, ItemNotFound, LeaseLost, ValidationError
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

REAP_LIMIT = 100
# How often a process offers to raise the claims' scan floors (migration 0012): the server's
# period, so that one process keeps them current and many processes call at most this often each.
FLOOR_PERIOD = 1.0
# The most one probe of `floors_wanted` (migration 0016) may take; one cut short says "wanted".
# A walk past its threshold (1,000 index entries) takes about a millisecond.
FLOOR_PROBE_BUDGET_MS = 200
# How many fold_queued statements (up to 256 queues each) one retention pass runs at most.
FOLD_ROUNDS = 64


def _interval(seconds: float | None) -> timedelta | None:
    """A duration in seconds as an interval of whole microseconds (as SQLite rounds it)."""
    return None if seconds is None else timedelta(microseconds=seconds_to_micros(seconds))


class PostgresBackend(Connections):
    """Storage in one PostgreSQL schema; see connection.py for the URL options."""

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self.channel = f"workclaim_{self.schema}"
        ident = sql.Identifier(self.schema)
        self._q = {
            name: sql.SQL(text).format(schema=ident).as_string(None)
            for name, text in load_queries(PACKAGE, "queries.sql").items()
        }
        self._schema = Schema(self.schema, self._q)
        self._wakeup = Wakeup(on_first_waiter=self._start_listener)
        self._listener: Listener | Poller | None = None
        # The first raise waits a period too: it compiles the function (milliseconds), which a
        # process that lives for a claim or two need not pay; longer-lived ones raise for it.
        self._floors_due = time.monotonic() + FLOOR_PERIOD
        self._floors_lock = threading.Lock()
        # Whether claims read the floors (migration 0015): yes until the first answer, which
        # is always safe; a claim without them walks from the start of the order.
        self._floors_wanted = True

    # -- running queries -------------------------------------------------------------------
    def _one(self, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run one autocommit statement (safe to repeat); its first row."""
        return self._call(lambda conn: conn.execute(self._q[name], params).fetchone())

    def _all(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run one autocommit statement (safe to repeat); all its rows."""
        return self._call(lambda conn: conn.execute(self._q[name], params).fetchall())

    # -- schema ----------------------------------------------------------------------------
    def migrate(self) -> None:
        self.migrate_to(SCHEMA_VERSION)

    def migrate_to(self, target: int, *, analyze: bool = True) -> None:
        """Apply the migrations up to `target` (see `Schema.migrate`; `analyze=False` leaves
        the tables unanalyzed, for tests). With a `direct_url` the version is read through the
        pool and only a migration that has work opens a direct session (see
        `Connections._call_direct`): hundreds of processes starting together on a migrated
        schema open no direct connection."""
        if self.direct_conninfo is not None and self._call(self._schema.version) == target:
            return
        self._call_direct(lambda conn: self._schema.migrate(conn, target, analyze=analyze))

    def migration_sql(self, name: str) -> str:
        """A migration file with the schema name filled in."""
        return self._schema.migration_sql(name)

    def verify_schema(self) -> None:
        self._schema.verify(self._call(self._schema.version))

    # -- time ------------------------------------------------------------------------------
    def store_now(self) -> datetime:
        row = self._one("store_now", {})
        assert row is not None
        return row[0]  # type: ignore[no-any-return]

    # -- producing -------------------------------------------------------------------------
    def enqueue(
        self,
        queue: str,
        items: Sequence[NewItem],
        *,
        now: datetime | None = None,
        connection: psycopg.Connection[Any] | None = None,
    ) -> list[int]:
        """See `Backend.enqueue`; with `connection`, inside the caller's own transaction."""
        if connection is not None:
            return self.enqueue_in_transaction(connection, queue, items, now=now)

        def insert(conn: psycopg.Connection[Any]) -> list[int]:
            self._ensure_groups(conn, queue, items)
            if any(item.dedupe_key is not None for item in items):
                with conn.transaction():
                    return self._insert_each(conn, queue, items, now)
            return self._insert_batch(conn, queue, items, now)

        ids = self._call(insert, retry=False)  # a repeat could enqueue twice
        self._wakeup.notify()
        return ids

    def enqueue_in_transaction(
        self,
        connection: psycopg.Connection[Any],
        queue: str,
        items: Sequence[NewItem],
        *,
        now: datetime | None = None,
    ) -> list[int]:
        """Insert the items through the caller's psycopg connection and leave the commit to the
        caller: the items exist exactly when the caller's transaction commits, and listeners
        are notified then. On an autocommit connection the batch is one transaction of its own.
        """
        if not isinstance(connection, psycopg.Connection):
            raise ValidationError(
                "connection must be a psycopg (3) Connection to the queue's database, got "
                f"{type(connection).__name__}"
            )
        try:
            if connection.autocommit:
                with connection.transaction():
                    return self._insert_any(connection, queue, items, now)
            return self._insert_any(connection, queue, items, now)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def _insert_any(
        self,
        conn: psycopg.Connection[Any],
        queue: str,
        items: Sequence[NewItem],
        now: datetime | None,
    ) -> list[int]:
        self._ensure_groups(conn, queue, items)
        if any(item.dedupe_key is not None for item in items):
            return self._insert_each(conn, queue, items, now)
        return self._insert_batch(conn, queue, items, now)

    def _ensure_groups(
        self, conn: psycopg.Connection[Any], queue: str, items: Sequence[NewItem]
    ) -> None:
        """Before grouped items are inserted: their groups' rows and the default group's (which
        send the queue's claims to the fair order). Items without a group write nothing here.
        A row without items is harmless, so this need not share the insert's transaction."""
        groups = {item.group for item in items if item.group is not None}
        if groups:
            conn.execute(self._q["ensure_groups"], {"queue": queue, "groups": ["", *groups]})

    def _insert_batch(
        self,
        conn: psycopg.Connection[Any],
        queue: str,
        items: Sequence[NewItem],
        now: datetime | None,
    ) -> list[int]:
        """Items without dedupe keys, in one statement that also notifies once."""
        row = conn.execute(
            self._q["insert_many"],
            {
                "now": now,
                "queue": queue,
                "channel": self.channel,
                "payloads": [item.payload for item in items],
                "priorities": [item.priority for item in items],
                "run_ats": [item.run_at for item in items],
                "delays": [_interval(item.delay) for item in items],
                "max_attempts": [item.max_attempts for item in items],
                "histories": [item.history for item in items],
                "groups": [item.group for item in items],
            },
        ).fetchone()
        assert row is not None
        return [int(i) for i in row[0]]  # ascending ids = input order (see insert_many)

    def _insert_each(
        self,
        conn: psycopg.Connection[Any],
        queue: str,
        items: Sequence[NewItem],
        now: datetime | None,
    ) -> list[int]:
        """Items one by one, honouring dedupe keys (also repeats within the batch); runs inside
        a transaction and notifies once at its end if it inserted anything."""
        ids: list[int] = []
        inserted = False
        for item in items:
            params = {
                "now": now,
                "queue": queue,
                "payload": item.payload,
                "priority": item.priority,
                "run_at": item.run_at,
                "delay": _interval(item.delay),
                "max_attempts": item.max_attempts,
                "dedupe_key": item.dedupe_key,
                "history": item.history,
                "group": item.group,
            }
            while True:
                row = conn.execute(self._q["insert_dedupe"], params).fetchone()
                if row is not None:
                    inserted = True
                    break
                # The key's holder committed before us (or is ours): this statement's fresh
                # snapshot sees it, unless it finished meanwhile and freed the key: try again.
                row = conn.execute(self._q["find_dedupe"], params).fetchone()
                if row is not None:
                    break
            ids.append(int(row[0]))
        if inserted:
            conn.execute(self._q["notify"], {"channel": self.channel})
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
        params: dict[str, Any] = {
            "queues": list(queues),
            "worker": worker,
            "lease": _interval(lease_seconds),
            "limit": limit,
            "now": now,
            "reap_limit": REAP_LIMIT,
        }
        params["floors"] = self._keep_floors()
        claimed = self._all("claim", params)  # one autocommit statement: reap, then claim
        return rows.leases(claimed, worker, lease_seconds)

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
        """See `Backend.complete_and_claim`: one autocommit call of the function of the same
        name (migration 0004), safe to repeat (a repeated completion counts as done)."""
        params: dict[str, Any] = {
            "ids": [lease.id for lease, _ in done],
            "tokens": [lease.token for lease, _ in done],
            "workers": [lease.worker for lease, _ in done],
            "results": [result for _, result in done],
            "queues": list(queues),
            "worker": worker,
            "lease": _interval(lease_seconds),
            "limit": limit,
            "now": now,
            "reap_limit": REAP_LIMIT,
            "channel": self.channel,
            "floors": self._keep_floors() if limit > 0 else True,
        }
        out = self._all("complete_and_claim", params)
        ok = {(r[0], r[3]) for r in out if r[1] is None}
        flags = [(lease.id, lease.token) in ok for lease, _ in done]
        return flags, rows.leases([r for r in out if r[1] is not None], worker, lease_seconds)

    def _keep_floors(self) -> bool:
        """Whether the next claim reads the scan floors. Once a period, offer to raise them
        (see `raise_floors`) and ask whether they are wanted (`floors_wanted`, migration 0015):
        before a claim, so that a failure here is a failed claim that leased nothing. The other
        threads of the process go on claiming meanwhile, with the last answer."""
        now = time.monotonic()
        if now < self._floors_due or not self._floors_lock.acquire(blocking=False):
            return self._floors_wanted
        try:
            self._floors_due = now + FLOOR_PERIOD
            self._one("raise_floors", {})
            wanted = self._call(self._ask_floors)
            self._floors_wanted = wanted is None or bool(wanted[0])
        finally:
            self._floors_lock.release()
        return self._floors_wanted

    def _ask_floors(self, conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
        """`floors_wanted` within its budget (migration 0016): a probe cut short says wanted in
        SQL; a cancel anywhere else in the call says so here (None), never a failed claim."""
        try:
            with conn.transaction():
                conn.execute(self._q["probe_budget"], {"budget": f"{FLOOR_PROBE_BUDGET_MS}ms"})
                return conn.execute(self._q["floors_wanted"]).fetchone()
        except pg_errors.QueryCanceled:
            return None

    @staticmethod
    def _fence(lease: Lease, now: datetime | None) -> dict[str, Any]:
        return {"id": lease.id, "token": lease.token, "worker": lease.worker, "now": now}

    def _ended(self, lease: Lease, op: str) -> str:
        """After a fenced write changed nothing: the stored outcome if this is a repeat of the
        call that ended this very lease, else `LeaseLost`."""
        row = self._one("lease_end", {"id": lease.id})
        if row is not None and row[0] == lease.token and row[1] == op:
            return str(row[2])
        raise LeaseLost(lease.id, lease.token)

    def heartbeat(
        self, lease: Lease, *, extend_seconds: float | None, now: datetime | None = None
    ) -> Lease:
        params = self._fence(lease, now)
        params["extend"] = _interval(extend_seconds)
        row = self._one("heartbeat", params)
        if row is None:
            raise LeaseLost(lease.id, lease.token)
        return replace(lease, expires_at=row[0])

    def complete(self, lease: Lease, *, result: str | None, now: datetime | None = None) -> None:
        params = self._fence(lease, now)
        params["result"] = result
        params["channel"] = self.channel
        row = self._one("complete", params)
        if row is None:
            self._ended(lease, "complete")
        elif row[1] is not None:  # the lease held a slot of a limited queue: it is free now
            self._wakeup.notify()

    def release(self, lease: Lease, *, delay_seconds: float, now: datetime | None = None) -> None:
        params = self._fence(lease, now)
        params["delay"] = _interval(delay_seconds)
        params["channel"] = self.channel
        if self._one("release", params) is None:
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
        params = self._fence(lease, now)
        params["error"] = error
        params["retry"] = _interval(retry_delay)
        params["channel"] = self.channel
        row = self._one("fail", params)
        if row is None:
            return Status(self._ended(lease, "fail"))
        status = Status(row[0])
        if row[1] is not None:  # queued again, or a slot of a limited queue freed
            self._wakeup.notify()
        return status

    # -- inspection and housekeeping -------------------------------------------------------
    def get(self, item_id: int) -> Item | None:
        row = self._one("get_item", {"id": item_id})
        return None if row is None else rows.item(row)

    def history(
        self, item_id: int, *, limit: int, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent] | None:
        params = {"id": item_id, "limit": limit, "start": start}
        found = self._all("history_newest" if newest_first else "history", params)
        return rows.events(item_id, found) if found else None

    def items(
        self, queue: str, status: Status, *, limit: int, after_id: int | None = None
    ) -> list[Item]:
        params = {
            "queue": queue,
            "status": str(status),
            "limit": limit,
            "after": 0 if after_id is None else after_id,
        }
        # Never prepared: a generic plan cannot know the status, so it could not use the
        # partial index items_ended for the dead list and would walk the done rows instead.
        found = self._call(
            lambda conn: conn.execute(self._q["list_items"], params, prepare=False).fetchall()
        )
        return [rows.item(row) for row in found]

    def queues(self) -> list[str]:
        return [str(row[0]) for row in self._all("queues", {})]

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        def read(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            # Folding first keeps the rows the count sums few (see fold_queued); both
            # statements are safe to repeat.
            conn.execute(self._q["fold_queued"], {"queue": queue})
            return conn.execute(self._q["stats"], {"queue": queue, "now": now}).fetchall()

        per_status = self._call(read)
        counts: dict[str, int] = {status: int(n) for status, n, _ in per_status if n}
        expired = sum(int(e) for _, _, e in per_status)
        return QueueStats(queue=queue, expired=expired, **counts)

    def _state_error(
        self, conn: psycopg.Connection[Any], item_id: int, verb: str
    ) -> ItemNotFound | InvalidState:
        row = conn.execute(self._q["status_of"], {"id": item_id}).fetchone()
        if row is None:
            return ItemNotFound(item_id)
        return InvalidState(f"cannot {verb} item {item_id}: it is {row[0]}")

    def cancel(self, item_id: int, *, now: datetime | None = None) -> None:
        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                row = conn.execute(self._q["cancel"], {"id": item_id, "now": now}).fetchone()
                if row is None:
                    raise self._state_error(conn, item_id, "cancel")

        self._call(run, retry=False)  # a repeat would find it cancelled and say so

    def requeue(
        self, item_id: int, *, max_attempts: int | None, now: datetime | None = None
    ) -> None:
        params = {
            "id": item_id,
            "now": now,
            "max_attempts": max_attempts,
            "channel": self.channel,
        }

        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                try:
                    with conn.transaction():  # a savepoint: the status lookup below still runs
                        row = conn.execute(self._q["requeue"], params).fetchone()
                except pg_errors.UniqueViolation as exc:
                    raise InvalidState(
                        f"cannot requeue item {item_id}: its dedupe key is held by another "
                        "live item"
                    ) from exc
                if row is None:
                    raise self._state_error(conn, item_id, "requeue")

        self._call(run, retry=False)  # a repeat would find it queued and say so
        self._wakeup.notify()

    def purge(
        self,
        queue: str | None,
        *,
        older_than_seconds: float,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> int:
        params = {
            "queue": queue,
            "older_than": _interval(older_than_seconds),
            "limit": limit,
            "now": now,
        }
        row = self._one("purge", params)
        purged = 0 if row is None else int(row[0])

        # The retention pass also folds what enqueues appended to the queued counts (see
        # fold_queued), so they stay few where nobody reads stats: a statement per 256 queues
        # (each holds an advisory lock per queue to its commit), until one moves nothing.
        def fold(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(self._q["fold_queued"], {"queue": None}).rowcount

        for _ in range(FOLD_ROUNDS):
            if self._call(fold) <= 0:
                break
        if purged:
            self._analyze_if_due()
        return purged

    def _analyze_if_due(self) -> None:
        """ANALYZE after a purge once items or history changed a lot since their last ANALYZE
        (see `analyze_due`): where autovacuum is off, the retention pass keeps the statistics
        current. ANALYZE reads a sample of fixed size, so its cost does not grow with the
        table, and the threshold runs it at most once per tenth of the table changed."""

        def run(conn: psycopg.Connection[Any]) -> None:
            due = conn.execute(self._q["analyze_due"], {"schema": self.schema}).fetchone()
            if due and due[0]:
                conn.execute(self._q["analyze"])

        self._call(run)

    def next_due(self, queues: Sequence[str], *, now: datetime | None = None) -> datetime | None:
        row = self._one("next_due", {"queues": list(queues), "now": now})
        return None if row is None else row[0]

    # -- wake-ups --------------------------------------------------------------------------
    def wakeup(self) -> Wakeup:
        return self._wakeup

    def _start_listener(self) -> None:
        """Called by the first waiter (under the Wakeup's lock): start, never block."""
        if self._closed:
            return
        self._listener = self._wakeup_source(self.channel, self._wakeup.notify)
        self._listener.start()

    # -- flow control ----------------------------------------------------------------------
    def policy(self, queue: str) -> QueuePolicy:
        row = self._one("policy", {"queue": queue})
        return policy_of(queue, row)

    def _store_policy(self, queue: str, query: str, params: dict[str, Any]) -> QueuePolicy:
        """Run set_policy or set_paused and, in the same transaction, create the queue's default
        group row (which sends its claims to claim_flow) and drop the policy row of a queue left
        with neither a limit nor the pause (its claims then lock nothing)."""
        params = {**params, "queue": queue, "channel": self.channel}

        def run(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
            with conn.transaction():
                conn.execute(self._q["ensure_groups"], {"queue": queue, "groups": [""]})
                row: tuple[Any, ...] | None = conn.execute(self._q[query], params).fetchone()
                conn.execute(self._q["drop_policy"], {"queue": queue})
            assert row is not None
            return row

        policy = policy_of(queue, self._call(run))  # the same write again is harmless
        self._wakeup.notify()
        return policy

    def set_policy(self, policy: QueuePolicy) -> QueuePolicy:
        return self._store_policy(policy.queue, "set_policy", policy_params(policy))

    def set_paused(self, queue: str, paused: bool) -> QueuePolicy:
        return self._store_policy(queue, "set_paused", {"paused": paused})

    def live_leases_by_group(
        self, queue: str, *, limit: int, now: datetime | None = None
    ) -> list[GroupLeases]:
        found = self._all("live_by_group", {"queue": queue, "limit": limit, "now": now})
        return [GroupLeases(group, int(n)) for group, n in found]

    # -- schedules (migration 0007) ---------------------------------------------------------
    def set_schedule(self, schedule: NewSchedule, *, now: datetime | None = None) -> Schedule:
        params = {
            "name": schedule.name,
            "queue": schedule.queue,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "payload": schedule.payload,
            "priority": schedule.priority,
            "max_attempts": schedule.max_attempts,
            "group": schedule.group,
            "catch_up": schedule.catch_up,
            "enabled": schedule.enabled,
            "now": now,
            "channel": self.channel,
        }

        def run(conn: psycopg.Connection[Any]) -> tuple[tuple[Any, ...], bool]:
            with conn.transaction():
                row = conn.execute(self._q["set_schedule"], params).fetchone()
                if row is not None:
                    return row, True
                same = conn.execute(self._q["get_schedule"], params).fetchone()
            assert same is not None  # the upsert found the row (and left it as it was)
            return same, False

        row, changed = self._call(run)  # the same write again changes nothing more
        if changed:
            self._wakeup.notify()
        return rows.schedule(row)

    def remove_schedule(self, name: str) -> bool:
        removed = self._one("remove_schedule", {"name": name, "channel": self.channel})
        if removed is not None:
            self._wakeup.notify()
        return removed is not None

    def schedules(self) -> list[Schedule]:
        return [rows.schedule(row) for row in self._all("list_schedules", {})]

    def get_schedule(self, name: str) -> Schedule | None:
        row = self._one("get_schedule", {"name": name})
        return None if row is None else rows.schedule(row)

    def fire_schedule(
        self,
        name: str,
        *,
        version: int,
        slot: datetime,
        item: NewItem,
        now: datetime | None = None,
    ) -> int | None:
        """See `Scheduling.fire_schedule`: take the slot (take_slot) and, only if that took it,
        insert the item as `enqueue` does (its groups, dedupe key, history and notification)
        and record its id, all in one transaction."""
        params = {"name": name, "version": version, "slot": slot, "now": now}

        def run(conn: psycopg.Connection[Any]) -> int | None:
            with conn.transaction():
                taken = conn.execute(self._q["take_slot"], params).fetchone()
                if taken is None:
                    return None
                item_id = self._insert_any(conn, str(taken[0]), [item], now)[0]
                conn.execute(self._q["slot_item"], {"name": name, "item_id": item_id})
                return item_id

        item_id = self._call(run, retry=False)  # a repeat after a commit would be refused
        if item_id is not None:
            self._wakeup.notify()
        return item_id

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.stop()
        self._close_pool()
        self._wakeup.notify()


def _conforms(backend: PostgresBackend) -> tuple[Backend, TransactionalEnqueue]:
    """mypy checks here that PostgresBackend meets the Backend protocol and can enqueue in a
    caller's transaction."""
    return backend, backend
