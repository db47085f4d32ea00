"""The Redis backend's connections: URL options, the pool, and the runners that send a script or
a command with errors translated.

Nothing that writes is ever re-sent by the client: redis-py's automatic retries are off, so a
timeout or a dropped connection surfaces as `BackendUnavailable` and an enqueue can never run
twice. Read-only scripts are retried once after a dropped connection. Scripts are called by SHA
(reloaded after `NOSCRIPT`, e.g. a `SCRIPT FLUSH`) on the backend's own connections (see
`_call`).

URL: `redis://[[user]:password@]host[:port][/db][?options]` or `rediss://...` (TLS). Options:
`prefix` (key prefix, default `workclaim`), `health_check_interval` (seconds, default 15), and the
TLS options `ssl_cert_reqs`, `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_check_hostname`.
Socket and connect timeouts come from `Settings.timeout`. See docs/redis.md.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from workclaim._time import to_micros
from workclaim.backends.redis.errors import translate
from workclaim.backends.redis.keys import DEFAULT_PREFIX, check_prefix
from workclaim.backends.redis.lua import SCRIPTS
from workclaim.config import Settings
from workclaim.errors import BackendUnavailable, ConfigError

_PASS_THROUGH: Final = frozenset(
    {"ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"}
)
_OPTIONS: Final = _PASS_THROUGH | {"prefix", "health_check_interval"}


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


class Connections:
    """This process's connections to one Redis primary, and the runners the verbs use.

    The backend inherits them: its verbs call `_run` (a script) and `_redis` (a command)."""

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

    def _close_connections(self) -> None:
        """Close the client, the pool and every connection of this backend's own."""
        self._client.close()
        self._pool.disconnect()
        with self._conns_lock:
            conns, self._conns, self._idle = self._conns, [], []
        for conn in conns:
            conn.disconnect()


def _pack(command: tuple[object, ...]) -> list[bytes]:
    """The command in RESP, by hiredis directly (the redis extra installs it; redis-py's packer
    would copy every argument again first). Arguments are str or int."""
    return [hiredis.pack_command(cast(Any, command))]
