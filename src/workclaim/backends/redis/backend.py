"""The Redis backend: every operation one Lua script, fenced, on the Redis clock, single primary.

Scripts live in `scripts/*.lua` (each opens with its KEYS/ARGV/reply header), are loaded once and
called by SHA (reloaded after `NOSCRIPT`, e.g. a `SCRIPT FLUSH`) on the backend's own
connections (see `_call`). Nothing that writes is ever re-sent by the client: redis-py's
automatic retries are off, so a timeout or a dropped connection surfaces as `BackendUnavailable`
and an enqueue can never run twice. Read-only scripts are retried
once after a dropped connection. Waiting claims are woken by one pub/sub subscriber per backend
(see `listener.py`).

URL: `redis://[[user]:password@]host[:port][/db][?options]` or `rediss://...` (TLS). Options:
`prefix` (key prefix, default `workclaim`), `health_check_interval` (seconds, default 15), and the
TLS options `ssl_cert_reqs`, `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_check_hostname`.
Socket and connect timeouts come from `Settings.timeout`. See docs/redis.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from workclaim._time import from_micros, seconds_to_micros, to_micros
from workclaim.backends._queryfile import list_files, load_text
from workclaim.backends.base import Backend, NewItem
from workclaim.backends.redis.durability import check_durability, read_durability
from workclaim.backends.redis.keys import DEFAULT_PREFIX, check_prefix, key
from workclaim.backends.redis.listener import Listener
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
    WorkclaimError,
)
from workclaim.models import EventKind, HistoryEvent, Item, Lease, QueueStats, Status

_PACKAGE: Final = "workclaim.backends.redis"
SCHEMA_VERSION: Final = 2  # 2: ids:<status>:<queue> indexes, history:<id> lists
REAP_LIMIT: Final = 100  # expired leases returned per claim
PROMOTE_LIMIT: Final = 1_000  # due delayed items made ready per queue per claim
PURGE_BATCH: Final = 1_000  # items deleted per purge script when the caller gives no limit
MIGRATE_BATCH: Final = 10_000  # index entries written per script when upgrading layout 1
_PASS_THROUGH: Final = frozenset(
    {"ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"}
)
_OPTIONS: Final = _PASS_THROUGH | {"prefix", "health_check_interval"}
# Error codes (the first word of an error reply) that redis-py has no class for and that mean
# "retry later": a script past its time limit, a replica without its primary.
_BUSY_CODES: Final = frozenset({"BUSY", "MASTERDOWN"})
_INCLUDE: Final = re.compile(r"^--@include (_[a-z_]+\.lua)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Script:
    """One operation's Lua source (shebang, shared helpers, body) and its SHA1."""

    name: str
    text: str
    sha: str


def load_scripts() -> dict[str, Script]:
    """Every `scripts/<op>.lua`, with `_common.lua` placed after its shebang line and each
    `--@include _<part>.lua` line replaced by that file (code shared by several scripts)."""
    common = load_text(_PACKAGE, "scripts/_common.lua")
    scripts: dict[str, Script] = {}
    for filename in list_files(_PACKAGE, "scripts", ".lua"):
        if filename.startswith("_"):
            continue
        body = load_text(_PACKAGE, f"scripts/{filename}")
        shebang, _, rest = body.partition("\n")
        if not shebang.startswith("#!lua"):
            raise RuntimeError(f"scripts/{filename} must start with a #!lua line")
        rest = _INCLUDE.sub(lambda m: load_text(_PACKAGE, f"scripts/{m[1]}"), rest)
        text = f"{shebang}\n{common}\n{rest}"
        name = filename.removesuffix(".lua")
        scripts[name] = Script(name, text, hashlib.sha1(text.encode("utf-8")).hexdigest())
    return scripts


SCRIPTS: Final = load_scripts()


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where and how to connect: the URL for redis-py (options stripped), prefix and options."""

    url: str
    prefix: str
    health_check_interval: float
    tls_options: dict[str, str]


def parse_url(url: str) -> RedisTarget:
    """Split workclaim's options off a redis:// URL; unknown options are refused."""
    parts = urlsplit(url)
    if not parts.hostname and not parts.path.startswith("/"):
        raise ConfigError(f"redis URL has no host: {url!r}; use redis://host:6379/0")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(
            f"unknown redis URL option(s) {sorted(unknown)}; known: {', '.join(sorted(_OPTIONS))}"
        )
    prefix = check_prefix(options.pop("prefix", DEFAULT_PREFIX))
    try:
        interval = float(options.pop("health_check_interval", "15"))
    except ValueError as exc:
        raise ConfigError("health_check_interval must be a number of seconds") from exc
    if not 0 <= interval <= 3_600:
        raise ConfigError("health_check_interval must be between 0 and 3600 seconds")
    tls = {k: options[k] for k in _PASS_THROUGH if k in options}
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(tls), ""))
    return RedisTarget(bare, prefix, interval, tls)


def translate(exc: redis.RedisError) -> WorkclaimError:
    """A redis-py error as a workclaim error, by class (never by message text)."""
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return ConfigError(f"Redis refused workclaim's credentials ({exc}); check the URL")
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return ConfigError(
            f"Redis refused a command to workclaim's user ({exc}); see docs/redis.md for the "
            "ACL it needs"
        )
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return BackendUnavailable(f"Redis cannot be reached or did not answer in time ({exc})")
    if isinstance(exc, redis.ReadOnlyError):
        return BackendUnavailable(
            f"Redis refused a write because this server is a replica ({exc}); connect to the "
            "primary"
        )
    if isinstance(exc, redis.ResponseError) and str(exc).split(" ", 1)[0] in _BUSY_CODES:
        return BackendUnavailable(f"Redis is busy ({exc}); retry later")
    if isinstance(exc, redis.OutOfMemoryError):
        return BackendError(f"Redis is out of memory (maxmemory reached); nothing written ({exc})")
    return BackendError(f"Redis error: {exc}")


class RedisBackend:
    """Storage in one Redis primary under a key prefix; see the module docstring for the URL."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        target = parse_url(url)
        self.prefix = target.prefix
        timeout = settings.timeout
        self._pool = redis.ConnectionPool.from_url(
            target.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=target.health_check_interval,
            retry=Retry(NoBackoff(), 0),  # never re-send a script that may have run
            decode_responses=True,
        )
        self._client = redis.Redis(connection_pool=self._pool)
        self._idle: list[Any] = []  # the scripts' connections (see _call)
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        self._pid = os.getpid()
        kwargs = self._pool.connection_kwargs
        self.server = f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
        self.server += f"/{kwargs.get('db', 0)}"
        self._closed = False
        self._wakeup = Wakeup(on_first_waiter=self._start_listener)
        self._listener: Listener | None = None
        self._listener_lock = threading.Lock()
        try:
            durability = self._redis(lambda: read_durability(self._client), idempotent=True)
            check_durability(durability, strict=settings.strict_durability, server=self.server)
        except BaseException:
            self._pool.disconnect()
            raise

    # -- calling Redis ---------------------------------------------------------------------
    def _redis(self, fn: Any, *, idempotent: bool) -> Any:
        """Run `fn()` with errors translated; a read is tried once more after a dropped
        connection (the pool reconnects), a write never is."""
        if self._closed:
            raise BackendUnavailable("this queue is closed")
        tries = 2 if idempotent else 1
        for attempt in range(tries):
            try:
                return fn()
            except redis.ConnectionError as exc:
                if attempt + 1 < tries and not isinstance(exc, redis.AuthenticationError):
                    continue
                raise translate(exc) from exc
            except redis.RedisError as exc:
                raise translate(exc) from exc
        raise AssertionError("unreachable")

    def _run(self, name: str, now: datetime | None, *args: object, write: bool = True) -> Any:
        """Call script `name` by SHA with ARGV = prefix, now ('' = TIME), *args; after NOSCRIPT
        (a SCRIPT FLUSH, a restarted server; nothing ran) send its source with EVAL, which also
        caches it again. Errors translated; a read is tried once more after a dropped
        connection, a write never is."""
        if self._closed:
            raise BackendUnavailable("this queue is closed")
        script = SCRIPTS[name]
        argv = (self.prefix, "" if now is None else to_micros(now), *args)
        for attempt in (1, 2):
            try:
                try:
                    return self._call("EVALSHA", script.sha, 0, *argv)
                except redis.exceptions.NoScriptError:
                    return self._call("EVAL", script.text, 0, *argv)
            except redis.ConnectionError as exc:
                if write or attempt == 2 or isinstance(exc, redis.AuthenticationError):
                    raise translate(exc) from exc
            except redis.RedisError as exc:
                raise translate(exc) from exc
        raise AssertionError("unreachable")

    def _call(self, *command: object) -> Any:
        """Send one command on an idle connection of this backend's own and read its reply.

        The scripts' hot path skips redis-py's client and pool layers (command callbacks,
        retry wrapper, pool bookkeeping and metrics: about 15 us of CPU per call, measured);
        an idle connection found stale (closed by a restarted server) is reopened before the
        send, one that failed mid-call is disconnected and reopened on next use. A forked child
        opens its own connections."""
        if self._pid != os.getpid():
            self._idle, self._conns, self._pid = [], [], os.getpid()
        idle = self._idle
        try:
            conn = idle.pop()
        except IndexError:
            conn = self._new_connection()
        else:  # as redis-py's pool checks: an idle socket with EOF or data on it is stale
            try:
                stale = conn.can_read()  # (e.g. the server restarted); nothing is sent yet
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                stale = True
            if stale:
                conn.disconnect()
        try:
            conn.send_packed_command(_pack(command))
            reply = conn.read_response()
        except redis.ResponseError:  # an error reply, read in full: the connection is sound
            idle.append(conn)
            raise
        except BaseException:  # maybe a reply left unread: reconnect on next use
            conn.disconnect()
            idle.append(conn)
            raise
        idle.append(conn)
        if self._closed:  # close() ran meanwhile and did not see this connection
            conn.disconnect()
        return reply

    def _new_connection(self) -> Any:
        """A redis-py Connection (untyped, hence Any) like the pool's: same URL, timeouts and
        health checks, owned here."""
        conn = self._pool.connection_class(**self._pool.connection_kwargs)
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    # -- schema ----------------------------------------------------------------------------
    def migrate(self) -> None:
        raw = self._redis(lambda: self._client.get(key(self.prefix, "schema")), idempotent=True)
        if raw == "1":
            self._upgrade_from_1()
        current = int(self._run("migrate", None, SCHEMA_VERSION))
        if current > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the Redis keys under prefix {self.prefix!r} have layout version {current}, "
                f"newer than this workclaim understands ({SCHEMA_VERSION}); upgrade workclaim"
            )

    def _upgrade_from_1(self) -> None:
        """Layout 1 -> 2 in bounded steps (MIGRATE_BATCH members per script): index every
        queue's items by id per status and drop empty queues from the queues set."""
        names = self._redis(
            lambda: self._client.smembers(key(self.prefix, "queues")), idempotent=True
        )
        for queue in sorted(names):
            for source in ("ready", "delayed", "done", "dead", "cancelled"):
                offset = 0
                while True:
                    n = int(
                        self._run(
                            "migrate", None, SCHEMA_VERSION, queue, source, offset, MIGRATE_BATCH
                        )
                    )
                    if n < MIGRATE_BATCH:
                        break
                    offset += n
            self._run("migrate", None, SCHEMA_VERSION, queue, "-", 0, 1)

    def verify_schema(self) -> None:
        raw = self._redis(lambda: self._client.get(key(self.prefix, "schema")), idempotent=True)
        current = 0 if raw is None else int(raw)
        if current != SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the Redis keys under prefix {self.prefix!r} have layout version {current}, "
                f"this workclaim needs {SCHEMA_VERSION}: run `workclaim migrate`"
            )

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
            args += (
                item.payload,
                item.priority,
                "" if item.run_at is None else to_micros(item.run_at),
                seconds_to_micros(item.delay),
                item.max_attempts,
                item.dedupe_key or "",
                "1" if item.history else "0",
            )
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
        return _leases(r, worker, lease_seconds)

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
        return [flag == "1" for flag in flags], _leases(flat, worker, lease_seconds)

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
        self._fenced("complete", lease, now, "0" if result is None else "1", result or "")

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
        return _item(item_id, flat) if flat else None

    def history(
        self, item_id: int, *, limit: int, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent] | None:
        newest = "1" if newest_first else "0"
        reply = self._run("history", None, item_id, start, limit, newest, write=False)
        if not reply:
            return None
        return [_event(item_id, text) for text in reply[1:]]

    def items(
        self, queue: str, status: Status, *, limit: int, after_id: int | None = None
    ) -> list[Item]:
        flat = self._run("items", None, queue, status.value, limit, after_id or 0, write=False)
        return [_item(int(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]

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

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self._client.close()
        self._pool.disconnect()
        with self._conns_lock:
            conns, self._conns, self._idle = self._conns, [], []
        for conn in conns:
            conn.disconnect()
        self._wakeup.notify()


def _pack(command: tuple[object, ...]) -> list[bytes]:
    """The command in RESP, by hiredis directly (the redis extra installs it; redis-py's packer
    would copy every argument again first). Arguments are str or int."""
    return [hiredis.pack_command(cast(Any, command))]


def _leases(r: Sequence[Any], worker: str, lease_seconds: float) -> list[Lease]:
    """Leases from a claim script's flat reply (7 values per lease)."""
    return [
        Lease(
            id=r[i],
            queue=r[i + 1],
            payload=json.loads(r[i + 2]),
            token=r[i + 3],
            attempt=r[i + 4],
            max_attempts=r[i + 5],
            expires_at=from_micros(r[i + 6]),
            worker=worker,
            lease_seconds=lease_seconds,
        )
        for i in range(0, len(r), 7)
    ]


def _item(item_id: int, flat: Sequence[str]) -> Item:
    """An item from its hash as a flat field/value array (HGETALL)."""
    f: dict[str, str] = dict(zip(flat[::2], flat[1::2], strict=True))
    return Item(
        id=item_id,
        queue=f["queue"],
        payload=json.loads(f["payload"]),
        status=Status(f["status"]),
        priority=int(f["priority"]),
        run_at=from_micros(int(f["run_at"])),
        attempts=int(f["attempts"]),
        max_attempts=int(f["max_attempts"]),
        dedupe_key=f.get("dedupe_key"),
        worker=f.get("worker"),
        expires_at=from_micros(int(f["expires_at"])) if f.get("expires_at") else None,
        last_error=f.get("last_error"),
        result=json.loads(f["result"]) if f.get("result") else None,
        created_at=from_micros(int(f["created_at"])),
        updated_at=from_micros(int(f["updated_at"])),
    )


def _event(item_id: int, text: str) -> HistoryEvent:
    """One history event from its stored text kind|at|attempt|status|token|worker|error."""
    kind, at, attempt, status, token, worker, error = text.split("|", 6)
    return HistoryEvent(
        item_id=item_id,
        kind=EventKind(kind),
        at=from_micros(int(at)),
        attempt=int(attempt),
        status=Status(status),
        token=int(token) if token else None,
        worker=worker or None,
        error=error or None,
    )


def _conforms(backend: RedisBackend) -> Backend:
    """mypy checks here that RedisBackend meets the Backend protocol."""
    return backend
