"""The MariaDB backend's connections: URL options, deadlines, the pool (one per backend
instance, replaced in a forked child) and the runners the verbs call.

Driver: mysqlclient (`MySQLdb`, C). Sessions are autocommit, with multi-statements on (so a
transaction's `SET TRANSACTION`, `START TRANSACTION` and clock read go in one round trip) and
`FOUND_ROWS` (an UPDATE's row count is the rows it matched, so a fenced write that sets a value
to what it already was still counts). Every session gets `time_zone = '+00:00'`, an
`innodb_lock_wait_timeout` and a `max_statement_time`, all from `Settings.timeout`, and the
client's connect/read/write timeouts: a server that is down or hung gives `BackendUnavailable`
within about that deadline, never a hang.

Isolation: every write transaction starts `SET TRANSACTION ISOLATION LEVEL READ COMMITTED` (in the
same round trip as its START TRANSACTION): the claim's `FOR UPDATE SKIP LOCKED` then takes no gap
locks, and each statement sees the latest commits. Reads run in autocommit (one consistent
snapshot per statement). A deadlock (1213) rolls the whole transaction back; the runner runs it
again after a short random pause, at most `WRITE_ATTEMPTS` times in all, then raises
`BackendUnavailable`. A lock wait timeout (1205) is `BackendUnavailable` at once (the deadline
has passed; the runner rolls the transaction back).

URL options (query string): `pool_size` (most connections of one backend, default 10, as
PostgreSQL's), `connect_timeout`, `read_timeout`, `write_timeout` and `lock_wait_timeout` (whole
seconds; default: the settings' timeout, rounded up; the read timeout adds a second of grace to
the server's own `max_statement_time`).
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import MySQLdb
from MySQLdb.connections import Connection as MySQLConnection
from MySQLdb.constants import CLIENT

from workclaim._time import to_micros
from workclaim.backends import durability
from workclaim.backends.mariadb.errors import CONNECTION_LOST, RETRYABLE, code_of, translate
from workclaim.config import Settings
from workclaim.errors import BackendUnavailable, ConfigError, WorkclaimError

T = TypeVar("T")


DEFAULT_PORT = 3306
DEFAULT_POOL_SIZE = 10
WRITE_ATTEMPTS = 8  # runs of a transaction that deadlocks
RETRY_PAUSE = 0.002  # seconds: the most of the random pause before a rerun, times the attempt
CHECK_IDLE_SECONDS = 1.0  # a pooled connection idle longer than this is pinged before use
MIN_MARIADB = (10, 6)  # FOR UPDATE SKIP LOCKED (sequences came in 10.3)
_OPTIONS = ("pool_size", "connect_timeout", "read_timeout", "write_timeout", "lock_wait_timeout")

# The store's clock, in microseconds since the epoch: datetime arithmetic on UTC_TIMESTAMP, so it
# is right whatever the session's time zone (also on a caller's connection).
CLOCK_SQL = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
_BEGIN = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION"
_BEGIN_WITH_CLOCK = f"{_BEGIN}; SELECT {CLOCK_SQL}"


class Cursor(Protocol):
    """The part of a MySQLdb cursor workclaim uses, typed (the driver's stubs leave it untyped).
    `execute` returns the rows a statement matched (FOUND_ROWS); `nextset` moves to the next
    result of a multi-statement query."""

    lastrowid: int | None
    description: Any

    def execute(self, query: str, args: Any = None) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[tuple[Any, ...]]: ...

    def nextset(self) -> bool | None: ...

    def close(self) -> None: ...


class Session(Protocol):
    """The part of a MySQLdb connection workclaim uses, typed (as `Cursor`)."""

    def cursor(self) -> Any: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def ping(self) -> Any: ...

    def character_set_name(self) -> str: ...

    def get_autocommit(self) -> bool: ...


def cursor(conn: Session) -> Cursor:
    """A (buffered, tuple-row) cursor on `conn`, typed."""
    return cast(Cursor, conn.cursor())


def session(conn: MySQLConnection) -> Session:
    """A MySQLdb connection, typed."""
    return cast(Session, conn)


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to connect, parsed from a mariadb:// or mysql:// URL."""

    host: str
    port: int
    user: str
    password: str
    database: str
    pool_size: int
    connect_timeout: int
    read_timeout: int
    write_timeout: int
    lock_wait_timeout: int
    statement_timeout: float

    @property
    def name(self) -> str:
        """`host:port/database`, for messages (no user, no password)."""
        return f"{self.host}:{self.port}/{self.database}"


def _seconds(options: dict[str, str], key: str, default: int) -> int:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} must be a whole number of seconds, got {raw!r}") from exc
    if not 1 <= value <= 3600:
        raise ConfigError(f"{key} must be between 1 and 3600 seconds")
    return value


def parse_url(url: str, settings: Settings) -> Target:
    """The connection target of a mariadb:// or mysql:// URL; `ConfigError` when malformed."""
    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError(
            f"the MariaDB URL names no database: {url.split('@')[-1]!r}; use "
            "mariadb://user:password@host:3306/db"
        )
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigError(f"invalid port in the MariaDB URL: {exc}") from exc
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown MariaDB URL option(s) {sorted(unknown)}; known: {', '.join(_OPTIONS)}"
        )
    try:
        pool_size = int(options.get("pool_size", DEFAULT_POOL_SIZE))
    except ValueError as exc:
        raise ConfigError("pool_size must be a whole number of connections") from exc
    if not 1 <= pool_size <= 1000:
        raise ConfigError("pool_size must be between 1 and 1000")
    deadline = max(1, math.ceil(settings.timeout))
    return Target(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        pool_size=pool_size,
        connect_timeout=_seconds(options, "connect_timeout", deadline),
        read_timeout=_seconds(options, "read_timeout", deadline + 1),
        write_timeout=_seconds(options, "write_timeout", deadline),
        lock_wait_timeout=_seconds(options, "lock_wait_timeout", deadline),
        statement_timeout=settings.timeout,
    )


def connect(target: Target) -> Session:
    """A new session with workclaim's settings (see the module docstring)."""
    init = (
        f"SET time_zone = '+00:00', innodb_lock_wait_timeout = {target.lock_wait_timeout}, "
        f"max_statement_time = {target.statement_timeout:.3f}"
    )
    return session(
        MySQLdb.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            database=target.database,
            charset="utf8mb4",
            collation="utf8mb4_bin",
            autocommit=True,
            connect_timeout=target.connect_timeout,
            read_timeout=target.read_timeout,
            write_timeout=target.write_timeout,
            client_flag=CLIENT.MULTI_STATEMENTS | CLIENT.FOUND_ROWS,
            init_command=init,
        )
    )


def lost(exc: BaseException) -> bool:
    """True when the error means the session is gone (the connection must be dropped)."""
    return isinstance(exc, MySQLdb.OperationalError) and code_of(exc) in CONNECTION_LOST


class Pool:
    """A thread-safe pool of at most `size` sessions: idle ones reused newest first, one idle
    past `CHECK_IDLE_SECONDS` pinged before use, a broken one dropped and replaced."""

    def __init__(self, target: Target, timeout: float) -> None:
        self._target = target
        self._timeout = timeout
        self._cond = threading.Condition()
        self._idle: list[tuple[Session, float]] = []
        self._open = 0
        self.closed = False

    def acquire(self) -> Session:
        """A session for this thread's call; `BackendUnavailable` when none frees up within the
        deadline or the server cannot be reached."""
        deadline = time.monotonic() + self._timeout
        conn: Session | None = None
        last = 0.0
        with self._cond:
            while True:
                if self.closed:
                    raise BackendUnavailable("this queue is closed")
                if self._idle:
                    conn, last = self._idle.pop()
                    break
                if self._open < self._target.pool_size:
                    self._open += 1  # this call's slot: a session is opened for it below
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BackendUnavailable(
                        f"no MariaDB connection free within {self._timeout}s (pool_size "
                        f"{self._target.pool_size}); retry later or raise pool_size"
                    )
                self._cond.wait(left)
        if conn is not None and time.monotonic() - last > CHECK_IDLE_SECONDS:
            try:
                conn.ping()
            except MySQLdb.MySQLError:  # gone while idle (a restart): a new one in its slot
                with suppress(MySQLdb.MySQLError):
                    conn.close()
                conn = None
        if conn is None:
            try:
                conn = connect(self._target)
            except MySQLdb.MySQLError as exc:
                with self._cond:
                    self._open -= 1
                    self._cond.notify()
                raise translate(exc) from exc
        return conn

    def release(self, conn: Session, *, broken: bool = False) -> None:
        """Give a session back; `broken` drops it (its slot frees up for a new one)."""
        if broken or self.closed:
            self._discard(conn)
            return
        with self._cond:
            self._idle.append((conn, time.monotonic()))
            self._cond.notify()

    def _discard(self, conn: Session) -> None:
        with suppress(MySQLdb.MySQLError):
            conn.close()
        with self._cond:
            self._open -= 1
            self._cond.notify()

    def close(self) -> None:
        """Close the idle sessions; sessions in use close as they come back."""
        with self._cond:
            self.closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for conn, _ in idle:
            self._discard(conn)


class Connections:
    """One backend's pool of sessions and the runners its verbs use (`_write`, `_write_one`,
    `_read`, `_now`). The backend inherits them."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.target = parse_url(url, settings)
        self._closed = False
        self._pid = os.getpid()
        self._inherited: list[Pool] = []  # a forked child's copies of the parent's pools
        self._fork_lock = threading.Lock()
        self._pool = Pool(self.target, settings.timeout)
        self._check_server()

    def _check_server(self) -> None:
        """One session at open: a wrong host, database or password fails here at once; a MySQL
        server or a MariaDB older than 10.6 is refused; the durability policy is applied."""
        conn = self._pool.acquire()
        try:
            cur = cursor(conn)
            cur.execute(
                "SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@log_bin, @@sync_binlog"
            )
            version, flush, log_bin, sync_binlog = cur.fetchone()
        except MySQLdb.MySQLError as exc:
            self._pool.release(conn, broken=True)
            raise translate(exc) from exc
        self._pool.release(conn)
        check_server_version(str(version))
        loses = None
        if int(flush) != 1:
            loses = (
                f"innodb_flush_log_at_trx_commit = {flush}: a crash of the host can lose about "
                "the last second of acknowledged changes"
            )
        elif int(log_bin) and int(sync_binlog) != 1:
            loses = (
                f"sync_binlog = {sync_binlog} with the binary log on: a crash can lose "
                "acknowledged changes from the binary log (replicas, point-in-time recovery)"
            )
        durability.enforce(
            f"MariaDB at {self.target.name}",
            loses,
            fix="set innodb_flush_log_at_trx_commit = 1 (and sync_binlog = 1 with log_bin)",
            strict=self.settings.strict_durability,
        )

    def _connect(self) -> Session:
        """A session of its own, outside the pool (the wake-up poller, migrations)."""
        try:
            return connect(self.target)
        except MySQLdb.MySQLError as exc:
            raise translate(exc) from exc

    def _pool_here(self) -> Pool:
        """This process's pool. In a forked child the inherited pool's sessions are the
        parent's (sharing their sockets would interleave the two processes' queries, and
        closing them would end the parent's sessions): keep that pool, never used nor closed,
        and open one of this process's own."""
        if self._pid != os.getpid():
            with self._fork_lock:
                if self._pid != os.getpid():
                    self._inherited.append(self._pool)
                    self._pool = Pool(self.target, self.settings.timeout)
                    self._pid = os.getpid()
        return self._pool

    def _run(self, body: Callable[[Session], T], *, retry_lost: bool) -> T:
        """Run `body` on a pooled session with driver errors translated: again (up to
        `WRITE_ATTEMPTS` runs) after a deadlock, which rolled the whole
        transaction back, and once more on a fresh session when the session was lost and the
        call is safe to repeat (`retry_lost`)."""
        if self._closed:
            raise BackendUnavailable("this queue is closed")
        lost_once = False
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            pool = self._pool_here()
            conn = pool.acquire()
            try:
                result = body(conn)
            except MySQLdb.MySQLError as exc:
                broken = lost(exc)
                pool.release(conn, broken=broken)
                code = code_of(exc)
                if code in RETRYABLE and attempt < WRITE_ATTEMPTS:
                    # A random pause growing with the attempt, so the transactions that just
                    # collided do not meet again in step.
                    time.sleep(random.uniform(0, RETRY_PAUSE * attempt))
                    continue
                if broken and retry_lost and not lost_once:
                    lost_once = True
                    continue
                raise translate(exc) from exc
            except WorkclaimError:
                pool.release(conn)  # raised by the verb after its rollback: the session is fine
                raise
            except BaseException:
                pool.release(conn, broken=True)  # its state is unknown: never reuse it
                raise
            pool.release(conn)
            return result
        raise AssertionError("unreachable")

    def _write(
        self,
        fn: Callable[[Cursor, int], T],
        now: datetime | None = None,
        *,
        retry_lost: bool = True,
    ) -> T:
        """Run `fn(cursor, now_us)` in one READ COMMITTED transaction: committed when it
        returns, rolled back when it raises, run again after a deadlock. `now_us` is `now`, or
        the store's clock read at the transaction's start (same round trip as START)."""
        fixed = None if now is None else to_micros(now)

        def body(conn: Session) -> T:
            cur = cursor(conn)
            try:
                if fixed is None:
                    cur.execute(_BEGIN_WITH_CLOCK)
                    cur.nextset()
                    cur.nextset()
                    now_us = int(cur.fetchone()[0])
                else:
                    cur.execute(_BEGIN)
                    cur.nextset()
                    now_us = fixed
                out = fn(cur, now_us)
                conn.commit()
                return out
            except BaseException:
                with suppress(MySQLdb.MySQLError):
                    conn.rollback()
                raise
            finally:
                cur.close()

        return self._run(body, retry_lost=retry_lost)

    def _write_one(self, sql: str, params: dict[str, Any]) -> int:
        """One statement in autocommit (atomic on its own, its triggers included); returns the
        rows it matched. Safe to repeat: used for fenced writes only."""

        def body(conn: Session) -> int:
            cur = cursor(conn)
            try:
                return int(cur.execute(sql, params))
            finally:
                cur.close()

        return self._run(body, retry_lost=True)

    def _read(self, fn: Callable[[Cursor], T]) -> T:
        """Run `fn(cursor)` in autocommit (each statement its own snapshot; several reads that
        must agree start a transaction of their own)."""

        def body(conn: Session) -> T:
            cur = cursor(conn)
            try:
                return fn(cur)
            finally:
                cur.close()

        return self._run(body, retry_lost=True)

    def _now(self, now: datetime | None) -> int:
        """`now` in microseconds, or the store's clock (a round trip) when None."""
        if now is not None:
            return to_micros(now)
        return self._read(lambda cur: _clock(cur))

    def _close_connections(self) -> None:
        """Close this process's pool (never a forked parent's)."""
        if self._pid == os.getpid():
            self._pool.close()


def _clock(cur: Cursor) -> int:
    cur.execute(f"SELECT {CLOCK_SQL}")
    return int(cur.fetchone()[0])


def check_server_version(version: str) -> None:
    """`ConfigError` unless `version` (SELECT VERSION()) is MariaDB 10.6 or newer. MySQL has no
    sequences, which the fencing tokens come from (docs/mariadb.md)."""
    if "mariadb" not in version.lower():
        raise ConfigError(
            f"the server is MySQL {version}, not MariaDB: workclaim's mariadb:// backend needs "
            "MariaDB 10.6+ (its fencing tokens come from a SEQUENCE, which MySQL lacks; see "
            "docs/mariadb.md)"
        )
    try:
        major, minor = (int(p) for p in version.split("-")[0].split(".")[:2])
    except ValueError:
        return
    if (major, minor) < MIN_MARIADB:
        raise ConfigError(
            f"MariaDB {version} is too old: workclaim needs 10.6 or newer (FOR UPDATE SKIP LOCKED)"
        )
