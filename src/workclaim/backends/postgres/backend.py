"""The PostgreSQL backend: workers on many machines sharing one database.

psycopg 3 with a `psycopg_pool` pool (opened explicitly, health-checked on every checkout, so
connections broken by a server restart are replaced). Every connection carries deadlines:
`connect_timeout`, TCP keepalives, `tcp_user_timeout`, `statement_timeout` and
`idle_in_transaction_session_timeout`, all from `Settings.timeout`, so a database that is down
gives `BackendUnavailable` within that deadline, never a hang.

URL options (query string, removed before connecting; everything else goes to libpq):
`schema` (default `workclaim`: every table lives in it, so applications can share a database),
`pool_size` (most connections this process opens, default 10).

Opening checks that the server flushes commits before acknowledging them (see durability.py).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from workclaim._time import seconds_to_micros
from workclaim.backends._queryfile import list_files, load_queries, load_text
from workclaim.backends.base import Backend, NewItem, TransactionalEnqueue
from workclaim.backends.postgres.deadline import Watchdog
from workclaim.backends.postgres.durability import check_durability
from workclaim.backends.postgres.errors import translate
from workclaim.backends.postgres.listener import Listener
from workclaim.backends.wakeup import Wakeup
from workclaim.config import Settings
from workclaim.errors import (
    BackendUnavailable,
    ConfigError,
    InvalidState,
    ItemNotFound,
    LeaseLost,
    SchemaMismatch,
    ValidationError,
)
from workclaim.models import EventKind, HistoryEvent, Item, Lease, QueueStats, Status

T = TypeVar("T")

_PACKAGE = "workclaim.backends.postgres"
MIGRATIONS = [
    (int(name.split("_", 1)[0]), name) for name in list_files(_PACKAGE, "migrations", ".sql")
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
REAP_LIMIT = 100
DEFAULT_SCHEMA = "workclaim"
DEFAULT_POOL_SIZE = 10
# Lower-case identifiers only (no quoting surprises); short enough that the NOTIFY channel
# `workclaim_<schema>` stays within PostgreSQL's 63-byte identifier limit.
SCHEMA_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_OPTIONS = ("schema", "pool_size")
# A pooled connection idle longer than this is pinged before use; one in steady use is not
# (a ping is a round trip, as much as a claim's own), and if it broke anyway, calls that are
# safe to repeat run again once on a fresh connection.
CHECK_IDLE_SECONDS = 1.0
WATCHDOG_GRACE_SECONDS = 1.0


def parse_url(url: str) -> tuple[str, str, int]:
    """(libpq URL without workclaim's options, schema name, pool size) from a postgresql URL."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            ours[key] = value
        else:
            rest.append((key, value))
    schema = ours.get("schema", DEFAULT_SCHEMA)
    if not SCHEMA_PATTERN.fullmatch(schema):
        raise ConfigError(
            f"invalid schema name {schema!r} in the URL: use 1-48 characters from a-z 0-9 _, "
            "not starting with a digit"
        )
    try:
        pool_size = int(ours.get("pool_size", DEFAULT_POOL_SIZE))
    except ValueError as exc:
        raise ConfigError("pool_size must be a whole number of connections") from exc
    if not 1 <= pool_size <= 1000:
        raise ConfigError("pool_size must be between 1 and 1000")
    libpq_url = urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote)))
    try:
        conninfo_to_dict(libpq_url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"not a valid PostgreSQL URL: {exc}") from exc
    return libpq_url, schema, pool_size


def connection_string(libpq_url: str, timeout: float) -> str:
    """The libpq connection string with workclaim's deadlines added; a value the URL sets wins."""
    params: dict[str, Any] = conninfo_to_dict(libpq_url)
    deadline_ms = max(1, round(timeout * 1000))
    defaults: dict[str, Any] = {
        "connect_timeout": max(2, math.ceil(timeout)),  # libpq rounds 1 up to 2 anyway
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(timeout)),
        "keepalives_interval": max(1, math.ceil(timeout / 3)),
        "keepalives_count": 3,
        "tcp_user_timeout": deadline_ms,
        "application_name": "workclaim",
    }
    for key, value in defaults.items():
        params.setdefault(key, value)
    ours = (
        f"-c statement_timeout={deadline_ms} "
        f"-c idle_in_transaction_session_timeout={deadline_ms} -c TimeZone=UTC"
    )
    params["options"] = f"{ours} {params.get('options', '')}".strip()
    return make_conninfo("", **params)


def _interval(seconds: float | None) -> timedelta | None:
    """A duration in seconds as an interval of whole microseconds (as SQLite rounds it)."""
    return None if seconds is None else timedelta(microseconds=seconds_to_micros(seconds))


def _item(row: tuple[Any, ...]) -> Item:
    """An Item from a row of get_item / list_items (their column order)."""
    return Item(
        id=row[0],
        queue=row[1],
        payload=row[2],
        status=Status(row[3]),
        priority=row[4],
        run_at=row[5],
        attempts=row[6],
        max_attempts=row[7],
        dedupe_key=row[8],
        worker=row[9],
        expires_at=row[10],
        last_error=row[11],
        result=row[12],
        created_at=row[13],
        updated_at=row[14],
    )


def _leases(rows: list[tuple[Any, ...]], worker: str, lease_seconds: float) -> list[Lease]:
    """Leases from the claim function's rows, in claim order (tokens follow it; RETURNING has
    no order)."""
    rows.sort(key=lambda r: r[3])
    return [
        Lease(
            id=r[0],
            queue=r[1],
            payload=r[2],
            token=r[3],
            attempt=r[4],
            max_attempts=r[5],
            expires_at=r[6],
            worker=worker,
            lease_seconds=lease_seconds,
        )
        for r in rows
    ]


class PostgresBackend:
    """Storage in one PostgreSQL schema; see the module docstring for URL options."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        libpq_url, self.schema, self.pool_size = parse_url(url)
        self.conninfo = connection_string(libpq_url, settings.timeout)
        self.channel = f"workclaim_{self.schema}"
        ident = sql.Identifier(self.schema)
        self._q = {
            name: sql.SQL(text).format(schema=ident).as_string(None)
            for name, text in load_queries(_PACKAGE, "queries.sql").items()
        }
        self._ident = ident
        self._closed = False
        # A call still running a second past the server's statement_timeout is hung on the
        # network: the watchdog breaks its connection (see deadline.py).
        self._watchdog = Watchdog(settings.timeout + WATCHDOG_GRACE_SECONDS)
        self._wakeup = Wakeup(on_first_waiter=self._start_listener)
        self._listener: Listener | None = None
        self._last_used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self._pool = self._new_pool()
        self._pid = os.getpid()
        self._inherited: list[tuple[ConnectionPool[psycopg.Connection[Any]], Watchdog]] = []
        try:
            # One direct connection first: a wrong host, database or password fails here at
            # once with libpq's own reason, not after the pool's retries run out. It also
            # checks the session's durability settings, once per open (never on a call).
            with psycopg.connect(self.conninfo, autocommit=True) as first:
                check_durability(first, strict=settings.strict_durability)
            self._pool.open(wait=True, timeout=settings.timeout)
        except ConfigError:
            self._pool.close()
            raise
        except psycopg.Error as exc:
            self._pool.close()
            reason = " ".join(str(exc).split())
            raise BackendUnavailable(
                f"cannot connect to PostgreSQL ({reason}); is the server up and the URL right?"
            ) from exc

    # -- connections -----------------------------------------------------------------------
    def _new_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """This process's pool (not opened yet)."""
        return ConnectionPool(
            self.conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=self.pool_size,
            open=False,
            check=self._check_connection,
            timeout=self.settings.timeout,
            # The pool retries a failed connection with doubling pauses (1, 2, 4 s...) until
            # this; then a new checkout tries at once. Bounded by our deadline, so a server that
            # is back is used within about one deadline, not after minutes of backoff.
            reconnect_timeout=self.settings.timeout,
            name=f"workclaim-{self.schema}",
        )

    def _after_fork(self) -> None:
        """In a forked child, at its first call: the inherited pool's connections are the
        parent's sessions (sharing their sockets would interleave the two processes' queries
        and replies), and the pool's and the watchdog's threads do not exist here. Keep those
        objects, never used nor closed (closing would end the parent's sessions), and open a
        pool and a watchdog of this process's own."""
        with _FORK_LOCK:
            if self._pid == os.getpid():
                return  # another thread of this child did it
            self._inherited.append((self._pool, self._watchdog))
            self._watchdog = Watchdog(self.settings.timeout + WATCHDOG_GRACE_SECONDS)
            self._pool = self._new_pool()
            self._pool.open(wait=False)
            self._pid = os.getpid()

    def _check_connection(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's health check on checkout: ping a connection that sat idle, so one broken
        by a server restart is replaced before a call uses it."""
        last = self._last_used.get(conn)
        if last is None or time.monotonic() - last > CHECK_IDLE_SECONDS:
            with self._watchdog.guard(conn):
                ConnectionPool.check_connection(conn)

    def _call(self, fn: Callable[[psycopg.Connection[Any]], T], *, retry: bool = True) -> T:
        """Run `fn` on a pool connection (autocommit), driver errors translated here.

        `retry`: the call is safe to repeat (reads; fenced writes, whose repeat returns the
        first outcome; claims, whose lost leases just expire), so if the connection turns out
        broken (a restart, a terminated backend) it runs once more on a fresh one.
        """
        if self._closed:
            raise BackendUnavailable("this queue is closed")
        if self._pid != os.getpid():
            self._after_fork()
        for attempt in (1, 2):
            broken = False
            try:
                with self._pool.connection() as conn:
                    try:
                        with self._watchdog.guard(conn):
                            result = fn(conn)
                    except psycopg.OperationalError:
                        broken = conn.broken
                        raise
                    self._last_used[conn] = time.monotonic()
                    return result
            except psycopg.Error as exc:
                if not (retry and broken and attempt == 1):
                    raise translate(exc) from exc
        raise AssertionError("unreachable")

    def _one(self, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run one autocommit statement (safe to repeat); its first row."""
        return self._call(lambda conn: conn.execute(self._q[name], params).fetchone())

    def _all(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run one autocommit statement (safe to repeat); all its rows."""
        return self._call(lambda conn: conn.execute(self._q[name], params).fetchall())

    # -- schema ----------------------------------------------------------------------------
    def _version(self, conn: psycopg.Connection[Any]) -> int | None:
        table = sql.Identifier(self.schema, "schema_migrations").as_string(None)
        exists = conn.execute(self._q["migrations_exist"], {"table": table}).fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute(self._q["max_version"]).fetchone()
        return int(row[0]) if row else 0

    def migration_sql(self, name: str) -> str:
        """A migration file with the schema name filled in."""
        text = load_text(_PACKAGE, f"migrations/{name}")
        return sql.SQL(text).format(schema=self._ident).as_string(None)

    def migrate(self) -> None:
        self.migrate_to(SCHEMA_VERSION)

    def migrate_to(self, target: int) -> None:
        """Apply the migrations up to `target` under an advisory lock (one migrator per schema
        at a time, so many processes starting together are safe), each recorded with its
        version in `schema_migrations`, all in one transaction."""
        self._call(lambda conn: self._migrate(conn, target))

    def _migrate(self, conn: psycopg.Connection[Any], target: int) -> None:
        if self._version(conn) == target:
            return  # the common case: nothing to do, no lock, no DDL
        with conn.transaction():
            conn.execute(self._q["migration_lock"], {"schema": self.schema})
            conn.execute(self._q["create_schema"])
            conn.execute(self._q["migrations_table"])
            row = conn.execute(self._q["max_version"]).fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"schema {self.schema!r} is at version {current}, newer than this "
                    f"workclaim understands ({SCHEMA_VERSION}); upgrade workclaim"
                )
            for version, name in MIGRATIONS:
                if current < version <= target:
                    conn.execute(self.migration_sql(name))
                    conn.execute(self._q["record_migration"], {"version": version, "name": name})

    def verify_schema(self) -> None:
        current = self._call(self._version)
        if current != SCHEMA_VERSION:
            found = "missing" if current is None else f"at version {current}"
            raise SchemaMismatch(
                f"schema {self.schema!r} is {found}; this workclaim needs version "
                f"{SCHEMA_VERSION}: run `workclaim migrate`"
            )

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
        if any(item.dedupe_key is not None for item in items):
            return self._insert_each(conn, queue, items, now)
        return self._insert_batch(conn, queue, items, now)

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
        rows = self._all("claim", params)  # one autocommit statement: reap, then claim
        return _leases(rows, worker, lease_seconds)

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
        }
        rows = self._all("complete_and_claim", params)
        ok = {(r[0], r[3]) for r in rows if r[1] is None}
        flags = [(lease.id, lease.token) in ok for lease, _ in done]
        return flags, _leases([r for r in rows if r[1] is not None], worker, lease_seconds)

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
        if self._one("complete", params) is None:
            self._ended(lease, "complete")

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
        if status is Status.QUEUED:
            self._wakeup.notify()
        return status

    # -- inspection and housekeeping -------------------------------------------------------
    def get(self, item_id: int) -> Item | None:
        row = self._one("get_item", {"id": item_id})
        return None if row is None else _item(row)

    def history(
        self, item_id: int, *, limit: int, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent] | None:
        params = {"id": item_id, "limit": limit, "start": start}
        rows = self._all("history_newest" if newest_first else "history", params)
        if not rows:
            return None
        return [
            HistoryEvent(
                item_id=item_id,
                kind=EventKind(r[0]),
                at=r[1],
                attempt=r[2],
                status=Status(r[3]),
                token=r[4],
                worker=r[5],
                error=r[6],
            )
            for r in rows
            if r[0] is not None
        ]

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
        rows = self._call(
            lambda conn: conn.execute(self._q["list_items"], params, prepare=False).fetchall()
        )
        return [_item(row) for row in rows]

    def queues(self) -> list[str]:
        return [str(row[0]) for row in self._all("queues", {})]

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        rows = self._all("stats", {"queue": queue, "now": now})
        counts: dict[str, int] = {status: int(n) for status, n, _ in rows if n}
        expired = sum(int(e) for _, _, e in rows)
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
        return 0 if row is None else int(row[0])

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
        self._listener = Listener(self.conninfo, {}, self.channel, self._wakeup.notify)
        self._listener.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.stop()
        with suppress(psycopg.Error):
            self._pool.close(timeout=self.settings.timeout)
        self._watchdog.close()
        self._wakeup.notify()


_FORK_LOCK = threading.Lock()  # one thread of a forked child replaces the inherited pool


def _conforms(backend: PostgresBackend) -> tuple[Backend, TransactionalEnqueue]:
    """mypy checks here that PostgresBackend meets the Backend protocol and can enqueue in a
    caller's transaction."""
    return backend, backend
