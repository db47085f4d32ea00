"""The PostgreSQL backend's connections: URL options, libpq deadlines, the pool (one per
process, replaced in a forked child) and the runner that calls a function on a pooled
connection with driver errors translated and a broken connection retried once.

psycopg 3 with a `psycopg_pool` pool (opened explicitly, health-checked on checkout, so
connections broken by a server restart are replaced). Every connection carries deadlines:
`connect_timeout`, TCP keepalives, `tcp_user_timeout`, `statement_timeout` and
`idle_in_transaction_session_timeout`, all from `Settings.timeout`, so a database that is down
gives `BackendUnavailable` within that deadline, never a hang.

URL options (query string, removed before connecting; everything else goes to libpq):
`schema` (default `workclaim`: every table lives in it, so applications can share a database),
`pool_size` (most connections this process opens, default 10), `pgbouncer=transaction` (the URL
reaches the database through PgBouncer in transaction pooling mode) and `direct_url` (the same
database not through the pooler, for LISTEN and migrations; see pooler.py).

Through a transaction pooler a session is not ours from one transaction to the next, so the
pool sends no startup `options` (PgBouncer refuses them), prepares nothing on the server and
keeps no session state but the time zone, which PgBouncer tracks per client; the client-side
watchdog alone enforces the deadline (see docs/deployment.md for the server-side settings).

Opening checks that the server flushes commits before acknowledging them (see durability.py).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from workclaim.backends.postgres.deadline import Watchdog
from workclaim.backends.postgres.durability import check_durability
from workclaim.backends.postgres.errors import translate
from workclaim.backends.postgres.listener import Listener, Poller
from workclaim.backends.postgres.pooler import POLL_SECONDS, Pooler, refused_options
from workclaim.config import Settings
from workclaim.errors import BackendUnavailable, ConfigError

T = TypeVar("T")

DEFAULT_SCHEMA = "workclaim"
DEFAULT_POOL_SIZE = 10
# Lower-case identifiers only (no quoting surprises); short enough that the NOTIFY channel
# `workclaim_<schema>` stays within PostgreSQL's 63-byte identifier limit.
SCHEMA_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_OPTIONS = ("schema", "pool_size", "pgbouncer", "direct_url")
_MISSING_DATABASE = re.compile(r'database "([^"]*)" does not exist')  # libpq's FATAL at connect
# A pooled connection idle longer than this is pinged before use; one in steady use is not
# (a ping is a round trip, as much as a claim's own), and if it broke anyway, calls that are
# safe to repeat run again once on a fresh connection.
CHECK_IDLE_SECONDS = 1.0
WATCHDOG_GRACE_SECONDS = 1.0


# How many times a repeat-safe call the server chose as a deadlock's victim runs again: a safety
# net, cheap; the cycles the queued counters closed are gone since schema version 10.
DEADLOCK_RERUNS = 3


def _split(url: str) -> tuple[dict[str, str], str]:
    """(workclaim's options, the libpq URL without them) from a postgresql URL."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            ours[key] = value
        else:
            rest.append((key, value))
    libpq_url = urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote)))
    try:
        conninfo_to_dict(libpq_url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"not a valid PostgreSQL URL: {exc}") from exc
    return ours, libpq_url


def parse_url(url: str) -> tuple[str, str, int]:
    """(libpq URL without workclaim's options, schema name, pool size) from a postgresql URL."""
    ours, libpq_url = _split(url)
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
    return libpq_url, schema, pool_size


def parse_pooler(url: str) -> Pooler:
    """How a postgresql URL reaches its database: its `pgbouncer` and `direct_url` options."""
    ours, _ = _split(url)
    mode = ours.get("pgbouncer", "off")
    if mode not in ("off", "transaction"):
        raise ConfigError(
            f"pgbouncer={mode!r} in the URL: use pgbouncer=transaction for PgBouncer in "
            "transaction pooling mode (or leave it out for a direct connection)"
        )
    direct = ours.get("direct_url")
    if direct is not None:
        if not direct.startswith(("postgresql://", "postgres://")):
            raise ConfigError("direct_url must be a postgresql:// URL (percent-encoded)")
        direct = _split(direct)[1]
    return Pooler(transaction=mode == "transaction", direct_url=direct)


def connection_string(libpq_url: str, timeout: float, *, startup_options: bool = True) -> str:
    """The libpq connection string with workclaim's deadlines added; a value the URL sets wins.

    `startup_options`: also send the session settings (statement_timeout, ...) as the startup
    `options` parameter; off through a transaction pooler, which refuses it."""
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
    if not startup_options:
        return make_conninfo("", **params)
    ours = (
        f"-c statement_timeout={deadline_ms} "
        f"-c idle_in_transaction_session_timeout={deadline_ms} -c TimeZone=UTC"
    )
    params["options"] = f"{ours} {params.get('options', '')}".strip()
    return make_conninfo("", **params)


class Connections:
    """This process's pool of connections to one PostgreSQL database, and the runner the verbs
    use. The backend inherits them: its verbs call `_call`."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        libpq_url, self.schema, self.pool_size = parse_url(url)
        self.pooler = parse_pooler(url)
        pooled = self.pooler.transaction
        self.conninfo = connection_string(libpq_url, settings.timeout, startup_options=not pooled)
        # The session for LISTEN and migrations: the direct URL when given, else the pool's.
        self.direct_conninfo = (
            None
            if self.pooler.direct_url is None
            else connection_string(self.pooler.direct_url, settings.timeout)
        )
        self._closed = False
        # A call still running a second past the server's statement_timeout is hung on the
        # network: the watchdog breaks its connection (see deadline.py). Through a transaction
        # pooler no statement_timeout of ours runs first: it fires at the deadline itself.
        self._deadline = settings.timeout + (0.0 if pooled else WATCHDOG_GRACE_SECONDS)
        self._watchdog = Watchdog(self._deadline)
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
            with psycopg.connect(self.conninfo, **self._connect_kwargs()) as first:
                self._configure(first)
                check_durability(first, strict=settings.strict_durability)
            self._pool.open(wait=True, timeout=settings.timeout)
        except ConfigError:
            self._pool.close()
            raise
        except psycopg.Error as exc:
            self._pool.close()
            if refused_options(exc):
                raise ConfigError(
                    "the server refused the startup parameter `options`: this looks like "
                    "PgBouncer; add pgbouncer=transaction to the URL (see docs/deployment.md)"
                ) from exc
            reason = " ".join(str(exc).split())
            missing = _MISSING_DATABASE.search(reason)
            if missing is not None:  # a typo in the URL, not an outage: retrying cannot help
                raise ConfigError(
                    f"PostgreSQL has no database {missing.group(1)!r} (check the URL's database "
                    "name; workclaim creates its tables, not the database)"
                ) from exc
            raise BackendUnavailable(
                f"cannot connect to PostgreSQL ({reason}); is the server up and the URL right?"
            ) from exc

    def _new_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """This process's pool (not opened yet)."""
        return ConnectionPool(
            self.conninfo,
            kwargs=self._connect_kwargs(),
            configure=self._configure if self.pooler.transaction else None,
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
            self._watchdog = Watchdog(self._deadline)
            self._pool = self._new_pool()
            self._pool.open(wait=False)
            self._pid = os.getpid()

    def _connect_kwargs(self) -> dict[str, Any]:
        """psycopg's connect arguments: autocommit; through a transaction pooler also no
        server-side prepared statements (the next transaction may run on another session)."""
        if self.pooler.transaction:
            return {"autocommit": True, "prepare_threshold": None}
        return {"autocommit": True}

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """A new connection's session settings where the startup `options` cannot carry them:
        through a transaction pooler only the time zone, which PgBouncer tracks per client and
        sets again on whichever server session runs the client's next transaction."""
        if self.pooler.transaction:
            with self._watchdog.guard(conn):  # the pool's thread must not hang here either
                conn.execute("SET TimeZone TO 'UTC'")

    def _wakeup_source(self, channel: str, on_signal: Callable[[], None]) -> Listener | Poller:
        """What wakes waiting claims: LISTEN on a session of its own (the direct URL's when
        given; never a transaction pooler's), else a poller."""
        if self.direct_conninfo is not None:
            return Listener(self.direct_conninfo, {}, channel, on_signal)
        if self.pooler.transaction:
            return Poller(POLL_SECONDS, on_signal)
        return Listener(self.conninfo, {}, channel, on_signal)

    def _call_direct(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `fn` on a connection of its own to `direct_url` (a session, not a pooler's
        transaction: migrations), or on the pool when the URL gives none."""
        if self.direct_conninfo is None:
            return self._call(fn)
        if self._closed:
            raise BackendUnavailable("this queue is closed")
        if self._pid != os.getpid():
            self._after_fork()
        try:
            with (
                psycopg.connect(self.direct_conninfo, autocommit=True) as conn,
                self._watchdog.guard(conn),
            ):
                return fn(conn)
        except psycopg.Error as exc:
            raise translate(exc) from exc

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
        broken (a restart, a terminated backend) it runs once more on a fresh one, and if the
        server chose it as a deadlock's victim (its transaction rolled back whole) it runs
        again, at most `DEADLOCK_RERUNS` times (version 9's queued counters closed such cycles,
        version 10's never wait; docs/postgres.md, "Lock order", names what could still meet).
        """
        if self._closed:
            raise BackendUnavailable("this queue is closed")
        if self._pid != os.getpid():
            self._after_fork()
        attempt, deadlocks = 1, 0
        while True:
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
            except psycopg.errors.DeadlockDetected as exc:
                if not retry or deadlocks >= DEADLOCK_RERUNS:
                    raise translate(exc) from exc
                deadlocks += 1
            except psycopg.Error as exc:
                if not (retry and broken and attempt == 1):
                    raise translate(exc) from exc
                attempt += 1

    def _close_pool(self) -> None:
        """Close this process's pool (waiting up to the deadline) and its watchdog."""
        with suppress(psycopg.Error):
            self._pool.close(timeout=self.settings.timeout)
        self._watchdog.close()


_FORK_LOCK = threading.Lock()  # one thread of a forked child replaces the inherited pool
