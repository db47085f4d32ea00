"""The SQLite backend's connections: URL options, opening with pragmas, one per thread, and the
runners that execute a read, a transaction or one autocommit statement on them.

Every write runs in an explicit `BEGIN IMMEDIATE` transaction on an autocommit connection, so a
writer takes the database's write lock before it reads and never hits the deferred-upgrade
`SQLITE_BUSY` that ignores `busy_timeout`. Each thread has its own connection; no connection
crosses a fork. `sqlite:///:memory:` is one in-process database behind one connection.

URL options (query string): `synchronous=full|normal` (default full: an acknowledged change
survives power loss; normal: faster, a power loss may drop the last commits, a crash does not),
`busy_timeout` (milliseconds; default: the settings' timeout), `gate=on|off` (default on: this
host's writers queue on an OS file lock before SQLite's lock, see gate.py; off: they wait in
SQLite's busy handler, which sleeps).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable
from contextlib import nullcontext, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from workclaim._time import now_micros, to_micros
from workclaim.backends.sqlite.clock import StoreClock
from workclaim.backends.sqlite.errors import translate
from workclaim.backends.sqlite.fsguard import refuse_network_filesystem
from workclaim.backends.sqlite.gate import WriterGate
from workclaim.config import Settings
from workclaim.errors import BackendError, BackendUnavailable, ConfigError, StorageFailed

T = TypeVar("T")

PAGE_SIZE = 2048  # for new databases; measured in docs/sqlite.md (4096: 14% more CPU per item)
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}
_GATE = {"on": True, "off": False}


def parse_url(url: str, settings: Settings) -> tuple[str, bool, str, int, bool]:
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


class Connection(sqlite3.Connection):
    """A connection that knows the store's time of its write in progress.

    The time of a write is read only once the write lock is held, so a call that waited for the
    lock is judged when it happens, not when it started waiting. A transaction reads it right
    after `BEGIN IMMEDIATE`; a single autocommit statement calls `workclaim_now()` in its SQL,
    which reads the clock at its first call in the statement (SQLite takes the statement's
    write lock before it evaluates anything) and returns that same value to every later call.
    """

    write_now: int | None = None  # microseconds; None: not read yet for this statement
    clock: StoreClock  # set when opened: the host's clock, never behind earlier writes

    def store_now(self) -> int:
        """The write's time: fixed at the first call (see the class docstring)."""
        if self.write_now is None:
            self.write_now = self.clock.now(now_micros())
        return self.write_now


class Connections:
    """This process's connections to one SQLite database, and the runners the verbs use.

    The backend inherits them: its verbs call `_write`, `_write_one` and `_read`."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.path, self.memory, self.synchronous, self.busy_timeout_ms, gate = parse_url(
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
        self._clock = StoreClock(None if self.memory else self._connect_target)
        self._local = threading.local()
        self._all: list[Connection] = []
        self._all_lock = threading.Lock()
        self._memory_lock = threading.RLock()
        self._pid = os.getpid()
        self._closed = False
        self._failed: StorageFailed | None = None

    def _connect(self) -> Connection:
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
            factory=Connection,
        )

    def _open(self) -> Connection:
        try:
            conn = self._connect()
            conn.clock = self._clock
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
            raise self._translate(exc) from exc
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _translate(self, exc: sqlite3.Error) -> BackendError:
        """`translate(exc)`; a failed disk I/O also stops this process using the database."""
        error = translate(exc)
        if isinstance(error, StorageFailed):
            self._failed = error
        return error

    def _conn(self) -> Connection:
        if self._closed:
            raise BackendUnavailable("this queue is closed")
        if self._failed is not None:  # never write again after a failed sync (StorageFailed)
            raise StorageFailed(f"refused after an earlier failure: {self._failed}")
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

    def _write(self, fn: Callable[[Connection, int], T], now: datetime | None = None) -> T:
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
                    raise self._translate(exc) from exc
                try:
                    conn.write_now = (
                        self._clock.now(now_micros()) if now is None else to_micros(now)
                    )
                    out = fn(conn, conn.write_now)
                    conn.execute("COMMIT")
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise self._translate(exc) from exc
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
                raise self._translate(exc) from exc
            finally:
                if gate is not None:
                    gate.release(fd)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read with errors translated."""
        with self._memory_lock if self.memory else nullcontext():
            try:
                return fn(self._conn())
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

    def _now(self, now: datetime | None) -> int:
        """`now` in microseconds, or the store's clock (clock.py) when None."""
        return self._clock.peek(now_micros()) if now is None else to_micros(now)

    def _close_connections(self) -> None:
        """Release the writer gate and close every connection this process opened."""
        if self._gate is not None:
            self._gate.close()
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
