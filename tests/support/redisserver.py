"""Throwaway `redis-server` processes on free loopback ports, for tests that need a server of their
own: one to kill, or one with particular persistence or eviction settings.

The shared server is never reconfigured or restarted; these run in a temporary directory with
whatever `--option value` pairs a test asks for, and are killed when the test is done.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

_READY_SECONDS = 10.0


def redis_server_binary() -> str | None:
    """The path of `redis-server`, or None when it is not installed."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at `url`."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """A `redis-server` on a free port in its own directory; a context manager that kills it.

    `options` are extra `--name value` settings, e.g. `{"maxmemory-policy": "allkeys-lru"}`.
    Persistence is off unless the options turn it on.
    """

    def __init__(self, options: dict[str, str] | None = None, directory: Path | None = None):
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self._tmp = None if directory is not None else tempfile.TemporaryDirectory(prefix="wc-")
        self.directory = directory if directory is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        settings = {"save": "", "appendonly": "no", **(options or {})}
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir"]
        argv += [str(self.directory), "--daemonize", "no", "--logfile", "server.log"]
        for name, value in settings.items():
            argv += [f"--{name}", value]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._argv = argv
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _READY_SECONDS
        while not answers(self.url, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.directory / "server.log"
                detail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server on port {self.port} did not start: {detail}")
            time.sleep(0.02)  # readiness poll of a process we started, not synchronisation
        return self

    def stop(self) -> None:
        """Kill the server (SIGKILL: nothing is flushed) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> Self:
        """Kill the server and start it again on the same port and directory (a crash)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Kill the server and remove its directory."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


DEFAULT_TEST_URL = "redis://127.0.0.1:6379/15"
_session: dict[str, str | None] = {}
_session_servers: list[RedisServer] = []


def session_redis_url() -> tuple[str | None, str]:
    """(URL of the Redis the tests share, or None; why not): `WORKCLAIM_TEST_REDIS_URL` or the
    default; when nothing answers there and `redis-server` is installed, a throwaway server
    started once for this test session (killed at exit)."""
    if "url" not in _session:
        url = os.environ.get("WORKCLAIM_TEST_REDIS_URL") or DEFAULT_TEST_URL
        if answers(url):
            _session["url"], _session["why"] = url, ""
        elif redis_server_binary() is None:
            _session["url"] = None
            _session["why"] = f"no Redis at {url} and redis-server is not installed"
        else:
            server = RedisServer().start()
            _session_servers.append(server)
            atexit.register(server.close)
            _session["url"], _session["why"] = server.url, ""
    return _session["url"], _session["why"] or ""


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under `prefix` (SCAN + UNLINK; never FLUSHDB on a shared server)."""
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":*"
        batch: list[bytes] = []
        for name in client.scan_iter(match=pattern, count=1_000):
            batch.append(name)
            if len(batch) >= 500:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    except (redis.RedisError, OSError):
        pass  # the server went away (a test stopped it): nothing left to clean
    finally:
        client.close()
