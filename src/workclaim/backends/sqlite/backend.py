"""The SQLite backend: the embedded default, one database file shared by threads and processes.

Every write runs in an explicit `BEGIN IMMEDIATE` transaction on an autocommit connection, so a
writer takes the database's write lock before it reads and never hits the deferred-upgrade
`SQLITE_BUSY` that ignores `busy_timeout`. Each thread has its own connection; no connection
crosses a fork. `sqlite:///:memory:` is one in-process database behind one connection.

URL options (query string): `synchronous=full|normal` (default full: an acknowledged change
survives power loss; normal: faster, a power loss may drop the last commits, a crash does not),
`busy_timeout` (milliseconds; default: the settings' timeout), `gate=on|off` (default on: this
host's writers queue on an OS file lock before SQLite's lock, see gate.py; off: they wait in
SQLite's busy handler, which sleeps).

The attempt history is written by a trigger (migrations/0002_history.sql) fired by the
`last_event` column that every state-changing statement sets, so the event is part of the very
statement that makes the change. A write that is one statement (complete, heartbeat, release,
fail, cancel) therefore runs as one autocommit statement, which SQLite makes atomic, instead of
BEGIN IMMEDIATE + statement + COMMIT.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, unquote, urlsplit

from workclaim._time import from_micros, now_micros, seconds_to_micros, to_micros
from workclaim.backends._queryfile import list_files, load_queries, load_text
from workclaim.backends.base import Backend, NewItem
from workclaim.backends.sqlite.fsguard import refuse_network_filesystem
from workclaim.backends.sqlite.gate import WriterGate
from workclaim.backends.wakeup import Wakeup
from workclaim.config import Settings
from workclaim.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidState,
    ItemNotFound,
    LeaseLost,
    SchemaMismatch,
)
from workclaim.models import EventKind, HistoryEvent, Item, Lease, QueueStats, Status

T = TypeVar("T")

_PACKAGE = "workclaim.backends.sqlite"
Q = load_queries(_PACKAGE, "queries.sql")
MIGRATIONS = [
    (int(name.split("_", 1)[0]), name) for name in list_files(_PACKAGE, "migrations", ".sql")
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
REAP_LIMIT = 100
PAGE_SIZE = 2048  # for new databases; measured in docs/sqlite.md (4096: 14% more CPU per item)
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}
_GATE = {"on": True, "off": False}
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_POLL_MIN = 0.001
_POLL_MAX = 0.02
_POLL_IDLE = 0.1
_REOPEN_MIN = 0.05  # the poller's pauses before it reopens its connection after an error
_REOPEN_MAX = 2.0


def _parse_url(url: str, settings: Settings) -> tuple[str, bool, str, int, bool]:
    """(path or memory name, is_memory, synchronous pragma, busy_timeout ms, gate on) from a
    sqlite URL."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"sqlite URLs have no host: use sqlite:///relative.db or sqlite:////abs.db, got {url!r}"
        )
    raw_path = unquote(parts.path)
    path = raw_path[1:] if raw_path.startswith("/") else raw_path
    if not path:
        raise ConfigError(
            f"sqlite URL has no path: {url!r}; use sqlite:///work.db or sqlite:///:memory:"
        )
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(options) - {"synchronous", "busy_timeout", "gate"}
    if unknown:
        raise ConfigError(
            f"unknown sqlite URL option(s) {sorted(unknown)}; "
            "known: synchronous, busy_timeout, gate"
        )
    gate = options.get("gate", "on").lower()
    if gate not in _GATE:
        raise ConfigError(f"gate must be 'on' or 'off', got {gate!r}")
    sync = options.get("synchronous", "full").lower()
    if sync not in _SYNCHRONOUS:
        raise ConfigError(f"synchronous must be 'full' or 'normal', got {sync!r}")
    try:
        busy_ms = int(options.get("busy_timeout", round(settings.timeout * 1000)))
    except ValueError as exc:
        raise ConfigError("busy_timeout must be an integer number of milliseconds") from exc
    if not 0 <= busy_ms <= 3_600_000:
        raise ConfigError("busy_timeout must be between 0 and 3600000 milliseconds")
    return path, path == ":memory:", _SYNCHRONOUS[sync], busy_ms, _GATE[gate]


class _Connection(sqlite3.Connection):
    """A connection that knows the store's time of its write in progress.

    The time of a write is read only once the write lock is held, so a call that waited for the
    lock is judged when it happens, not when it started waiting. A transaction reads it right
    after `BEGIN IMMEDIATE`; a single autocommit statement calls `workclaim_now()` in its SQL,
    which reads the clock at its first call in the statement (SQLite takes the statement's
    write lock before it evaluates anything) and returns that same value to every later call.
    """

    write_now: int | None = None  # microseconds; None: not read yet for this statement

    def store_now(self) -> int:
        """The write's time: fixed at the first call (see the class docstring)."""
        if self.write_now is None:
            self.write_now = now_micros()
        return self.write_now


def _translate(exc: sqlite3.Error) -> BackendError:
    """A driver error as a workclaim error (by error code, never by message text)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _BUSY_CODES:
        return BackendUnavailable(
            f"the SQLite database stayed locked past busy_timeout ({exc}); retry later"
        )
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return BackendError(
            f"the disk holding the SQLite database is full ({exc}); nothing was written"
        )
    if code is not None and code & 0xFF == sqlite3.SQLITE_CANTOPEN:
        return BackendUnavailable(f"cannot open the SQLite database ({exc})")
    return BackendError(f"SQLite error: {exc}")


class SqliteBackend:
    """Storage in one SQLite database; see the module docstring for URL options."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.path, self.memory, self.synchronous, self.busy_timeout_ms, gate = _parse_url(
            url, settings
        )
        if self.memory:
            self._connect_target = f"file:workclaim-{uuid.uuid4().hex}?mode=memory&cache=private"
        else:
            db_path = Path(self.path).expanduser().resolve()
            if not db_path.parent.is_dir():
                raise ConfigError(
                    f"the directory of the SQLite database does not exist: {db_path.parent}"
                )
            refuse_network_filesystem(db_path)
            self._connect_target = str(db_path)
            if not db_path.exists():
                # Create the file private to this user before SQLite does (0644 by umask).
                os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._gate = (
            WriterGate(self._connect_target, settings.timeout) if gate and not self.memory else None
        )
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._all_lock = threading.Lock()
        self._memory_lock = threading.RLock()
        self._pid = os.getpid()
        self._closed = False
        self._wakeup = Wakeup(on_first_waiter=self._start_poller)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- connections -----------------------------------------------------------------------
    def _connect(self) -> _Connection:
        """A new connection to the database (the callers' and the poller's): autocommit
        (transactions are explicit BEGIN IMMEDIATE), usable from any thread, waiting
        `busy_timeout` (by default the settings' timeout) for locks."""
        return sqlite3.connect(
            self._connect_target,
            uri=self.memory,
            isolation_level=None,
            check_same_thread=False,
            timeout=self.busy_timeout_ms / 1000,
            cached_statements=64,
            factory=_Connection,
        )

    def _open(self) -> _Connection:
        try:
            conn = self._connect()
            conn.create_function("workclaim_now", 0, conn.store_now)
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            # Decides the page size of a database this connection creates (a no-op on an
            # existing one): every commit writes each page it changed to the WAL, and a claim or
            # completion changes 3-5 pages, so smaller pages cost less CPU and I/O per commit.
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            if not self.memory:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise ConfigError(f"could not put the SQLite database in WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> _Connection:
        if self._closed:
            raise BackendUnavailable("this queue is closed")
        if os.getpid() != self._pid:  # a fork: never use the parent's connections
            self._local = threading.local()
            with self._all_lock:
                self._all = []
            self._pid = os.getpid()
        if self.memory:
            conn = getattr(self, "_memory_conn", None)
            if conn is None:
                conn = self._memory_conn = self._open()
            return conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    def _write(self, fn: Callable[[_Connection, int], T], now: datetime | None = None) -> T:
        """Run `fn(conn, now_us)` inside a BEGIN IMMEDIATE transaction (behind the writer gate),
        errors translated; rolled back on any error. `now_us` is `now`, or the store's clock
        read once the write lock is held."""
        lock = self._memory_lock if self.memory else nullcontext()
        gate = self._gate
        with lock:
            fd = gate.acquire() if gate is not None else -1
            try:
                conn = self._conn()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise _translate(exc) from exc
                try:
                    conn.write_now = self._now(now)
                    out = fn(conn, conn.write_now)
                    conn.execute("COMMIT")
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise _translate(exc) from exc
                    raise
                return out
            finally:
                if gate is not None:
                    gate.release(fd)

    def _write_one(self, sql: str, params: dict[str, Any], now: datetime | None) -> list[Any]:
        """One state-changing statement in autocommit (atomic on its own, its history trigger
        included), behind the writer gate; returns its RETURNING rows. Its SQL reads the time
        as `workclaim_now()`: `now`, or the store's clock once the statement holds the lock."""
        lock = self._memory_lock if self.memory else nullcontext()
        gate = self._gate
        with lock:
            fd = gate.acquire() if gate is not None else -1
            try:
                conn = self._conn()
                conn.write_now = None if now is None else to_micros(now)
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            finally:
                if gate is not None:
                    gate.release(fd)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read with errors translated."""
        with self._memory_lock if self.memory else nullcontext():
            try:
                return fn(self._conn())
            except sqlite3.Error as exc:
                raise _translate(exc) from exc

    # -- schema ----------------------------------------------------------------------------
    def _version(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        def apply(conn: sqlite3.Connection, _now_us: int) -> None:
            current = self._version(conn)
            if current > SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"the database's schema is version {current}, newer than this workclaim "
                    f"understands ({SCHEMA_VERSION}); upgrade workclaim"
                )
            for version, name in MIGRATIONS:
                if version > current:
                    for statement in _split_statements(load_text(_PACKAGE, f"migrations/{name}")):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {version}")

        self._write(apply)

    def verify_schema(self) -> None:
        current = self._read(self._version)
        if current != SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the database's schema is version {current}, this workclaim needs "
                f"{SCHEMA_VERSION}: run `workclaim migrate`"
            )

    # -- time ------------------------------------------------------------------------------
    @staticmethod
    def _now(now: datetime | None) -> int:
        return now_micros() if now is None else to_micros(now)

    def store_now(self) -> datetime:
        return from_micros(now_micros())

    # -- producing -------------------------------------------------------------------------
    def enqueue(
        self, queue: str, items: Sequence[NewItem], *, now: datetime | None = None
    ) -> list[int]:
        def insert(conn: sqlite3.Connection, now_us: int) -> list[int]:
            ids: list[int] = []
            for item in items:
                if item.dedupe_key is not None:
                    row = conn.execute(
                        Q["find_dedupe"], {"queue": queue, "dedupe_key": item.dedupe_key}
                    ).fetchone()
                    if row is not None:
                        ids.append(int(row[0]))
                        continue
                run_at = (
                    to_micros(item.run_at)
                    if item.run_at is not None
                    else now_us + seconds_to_micros(item.delay)
                )
                row = conn.execute(
                    Q["insert_item"],
                    {
                        "queue": queue,
                        "payload": item.payload,
                        "priority": item.priority,
                        "run_at": run_at,
                        "max_attempts": item.max_attempts,
                        "dedupe_key": item.dedupe_key,
                        "history": 1 if item.history else 0,
                        "now": now_us,
                    },
                ).fetchone()
                ids.append(int(row[0]))
            return ids

        ids = self._write(insert, now)
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
        rows = self._write(
            lambda c, now_us: self._take(c, queues, worker, lease_seconds, limit, now_us), now
        )
        return _leases(rows, worker, lease_seconds)

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
        leases, lease up to `limit` items, advance the token counter past the tokens given."""
        params: dict[str, Any] = {
            "now": now_us,
            "worker": worker,
            "lease_us": seconds_to_micros(lease_seconds),
            "limit": limit,
        }
        if len(queues) == 1:
            sql = Q["claim_one_queue"]
            params["queue"] = queues[0]
        else:
            sql = Q["claim_many_queues"]
            params["queues"] = json.dumps(list(queues))
        reap: dict[str, Any] = {"now": now_us, "limit": REAP_LIMIT}
        if conn.execute(Q["expired_exists"], reap).fetchone() is not None:
            reap["queues"] = params.get("queues") or json.dumps(list(queues))
            conn.execute(Q["reap_expired"], reap)
        rows = conn.execute(sql, params).fetchall()
        if rows:
            conn.execute(Q["advance_token"], {"n": len(rows)})
        return rows

    @staticmethod
    def _fence(lease: Lease) -> dict[str, Any]:
        return {"id": lease.id, "token": lease.token, "worker": lease.worker}

    def _ended(self, lease: Lease, op: str) -> str:
        """After a fenced write changed nothing: the stored outcome if this is a repeat of the
        call that ended this very lease, else `LeaseLost`."""
        row = self._read(lambda c: c.execute(Q["lease_end"], {"id": lease.id}).fetchone())
        if row is not None and row[0] == lease.token and row[1] == op:
            return str(row[2])
        raise LeaseLost(lease.id, lease.token)

    def heartbeat(
        self, lease: Lease, *, extend_seconds: float | None, now: datetime | None = None
    ) -> Lease:
        params = self._fence(lease)
        params["extend_us"] = None if extend_seconds is None else seconds_to_micros(extend_seconds)
        rows = self._write_one(Q["heartbeat"], params, now)
        if not rows:
            raise LeaseLost(lease.id, lease.token)
        return replace(lease, expires_at=from_micros(rows[0][0]))

    def complete(self, lease: Lease, *, result: str | None, now: datetime | None = None) -> None:
        params = self._fence(lease)
        params["result"] = result
        if not self._write_one(Q["complete"], params, now):
            self._ended(lease, "complete")

    def release(self, lease: Lease, *, delay_seconds: float, now: datetime | None = None) -> None:
        params = self._fence(lease)
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
        params = self._fence(lease)
        params["error"] = error
        params["retry_us"] = None if retry_delay is None else seconds_to_micros(retry_delay)
        rows = self._write_one(Q["fail"], params, now)
        if not rows:
            return Status(self._ended(lease, "fail"))
        status = Status(rows[0][0])
        if status is Status.QUEUED:
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

        def run(conn: sqlite3.Connection, now_us: int) -> tuple[list[bool], list[tuple[Any, ...]]]:
            flags: list[bool] = []
            for lease, result in done:
                params = self._fence(lease)
                params["result"] = result
                if conn.execute(complete, params).fetchall():
                    flags.append(True)
                    continue
                row = conn.execute(lease_end, {"id": lease.id}).fetchone()
                flags.append(row is not None and row[0] == lease.token and row[1] == "complete")
            if limit <= 0:
                return flags, []
            return flags, self._take(conn, queues, worker, lease_seconds, limit, now_us)

        flags, rows = self._write(run, now)
        return flags, _leases(rows, worker, lease_seconds)

    # -- inspection and housekeeping -------------------------------------------------------
    def get(self, item_id: int) -> Item | None:
        row = self._read(lambda c: c.execute(Q["get_item"], {"id": item_id}).fetchone())
        return None if row is None else _item(row)

    def history(
        self, item_id: int, *, limit: int, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent] | None:
        sql = Q["history_newest" if newest_first else "history"]
        params = {"id": item_id, "limit": limit, "start": start}

        def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]] | None:
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                rows = conn.execute(sql, params).fetchall()
                if rows or conn.execute(Q["item_exists"], {"id": item_id}).fetchone():
                    return rows
                return None
            finally:
                conn.execute("COMMIT")

        rows = self._read(run)
        if rows is None:
            return None
        return [
            HistoryEvent(
                item_id=r[0],
                kind=EventKind(r[1]),
                at=from_micros(r[2]),
                attempt=r[3],
                status=Status(r[4]),
                token=r[5],
                worker=r[6],
                error=r[7],
            )
            for r in rows
        ]

    def items(
        self, queue: str, status: Status, *, limit: int, after_id: int | None = None
    ) -> list[Item]:
        params = {
            "queue": queue,
            "limit": limit,
            "after": 0 if after_id is None else after_id,
        }
        sql = Q[f"items_{status}"]
        rows = self._read(lambda c: c.execute(sql, params).fetchall())
        return [_item(row) for row in rows]

    def queues(self) -> list[str]:
        rows = self._read(lambda c: c.execute(Q["queues"]).fetchall())
        return [str(row[0]) for row in rows]

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        params = {"queue": queue, "now": self._now(now)}
        row = self._read(lambda c: c.execute(Q["stats"], params).fetchone())
        queued, claimed, expired, total, dead, cancelled = (int(n) for n in row)
        return QueueStats(
            queue=queue,
            queued=queued,
            claimed=claimed,
            done=total - queued - claimed - dead - cancelled,
            dead=dead,
            cancelled=cancelled,
            expired=expired,
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
            params = {
                "queue": queue,
                "cutoff": now_us - seconds_to_micros(older_than_seconds),
                "limit": -1 if limit is None else limit,
            }
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
            due = [t for t in (run_at, expiry) if t is not None]
            return min(due) if due else None

        due_us = self._read(run)
        return None if due_us is None else from_micros(due_us)

    # -- wake-ups --------------------------------------------------------------------------
    def wakeup(self) -> Wakeup:
        return self._wakeup

    def _start_poller(self) -> None:
        """Other processes' commits show up as a new `PRAGMA data_version` on a connection of
        ours; poll it (it takes no lock) with a short bounded backoff while anyone waits."""
        if self.memory:
            return  # one process: every write notifies directly
        self._poller = threading.Thread(
            target=self._poll, name="workclaim-sqlite-poller", daemon=True
        )
        self._poller.start()

    def _poll(self) -> None:
        """Watch `data_version` until `close()`. After any SQLite error, wake the waiters (they
        look again and meet a lasting error themselves) and reopen the connection after a
        bounded backoff, as the PostgreSQL and Redis listeners reconnect: one error must not
        end cross-process wake-ups for the rest of the process."""
        backoff = _REOPEN_MIN
        while not self._stop.is_set():
            conn: sqlite3.Connection | None = None
            try:
                conn = self._connect()
                last = _data_version(conn)
                backoff = _REOPEN_MIN
                # The first reading wakes the waiters too: a commit made before this baseline
                # (before the poller started, or while it was reopening) must not go unseen.
                self._wakeup.notify()
                self._watch(conn, last)
            except sqlite3.Error:
                self._wakeup.notify()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _REOPEN_MAX)
            finally:
                if conn is not None:
                    conn.close()

    def _watch(self, conn: sqlite3.Connection, last: int) -> None:
        """Wake the waiters at every change of `data_version` from `last`, polling with a short
        bounded backoff while anyone waits, until `close()`; SQLite errors propagate."""
        pause = _POLL_MIN
        while not self._stop.is_set():
            self._stop.wait(pause if self._wakeup.waiting else _POLL_IDLE)
            version = _data_version(conn)
            if version != last:
                last = version
                pause = _POLL_MIN
                self._wakeup.notify()
            else:
                pause = min(pause * 2, _POLL_MAX)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._gate is not None:
            self._gate.close()
        if self._poller is not None:
            self._poller.join(timeout=1)
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._wakeup.notify()


WorkclaimStateError = ItemNotFound | InvalidState


def _leases(rows: list[tuple[Any, ...]], worker: str, lease_seconds: float) -> list[Lease]:
    """Leases from claim rows (id, queue, payload, token, attempts, max_attempts, expires_at),
    in token order: tokens were given in claim order, RETURNING has none."""
    if len(rows) > 1:
        rows.sort(key=lambda r: cast(int, r[3]))
    loads = json.loads
    return [
        Lease(
            id=r[0],
            queue=r[1],
            payload=loads(r[2]),
            token=r[3],
            attempt=r[4],
            max_attempts=r[5],
            expires_at=from_micros(r[6]),
            worker=worker,
            lease_seconds=lease_seconds,
        )
        for r in rows
    ]


def _data_version(conn: sqlite3.Connection) -> int:
    """The connection's `PRAGMA data_version`: it changes when another connection commits."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _item(row: tuple[Any, ...]) -> Item:
    """An Item from a get_item / items_* row."""
    return Item(
        id=row[0],
        queue=row[1],
        payload=json.loads(row[2]),
        status=Status(row[3]),
        priority=row[4],
        run_at=from_micros(row[5]),
        attempts=row[6],
        max_attempts=row[7],
        dedupe_key=row[8],
        worker=row[9],
        expires_at=None if row[10] is None else from_micros(row[10]),
        last_error=row[11],
        result=None if row[12] is None else json.loads(row[12]),
        created_at=from_micros(row[13]),
        updated_at=from_micros(row[14]),
    )


def _split_statements(script: str) -> list[str]:
    """Split a migration into complete statements (sqlite3.complete_statement decides)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if statement and not all(
                part.strip().startswith("--") or not part.strip() for part in statement.splitlines()
            ):
                statements.append(statement)
            buffer = ""
    return statements


def _conforms(backend: SqliteBackend) -> Backend:
    """mypy checks here that SqliteBackend meets the Backend protocol."""
    return backend
