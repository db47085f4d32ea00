"""A client-side deadline for calls on an open PostgreSQL connection.

`statement_timeout` is enforced by the server and `tcp_user_timeout` only fires when the kernel's
sent bytes go unacknowledged; when something in between keeps acknowledging while the server is
gone (a proxy, a pooler, a hung host behind a NAT), a call would wait for ever. The watchdog
shuts down the socket of a call that outlives its deadline: libpq then sees the connection
closed, psycopg raises `OperationalError`, the pool drops the connection and the caller gets
`BackendUnavailable`. One thread serves every call of a backend.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg


class Watchdog:
    """Breaks the connection of any call still running `grace` seconds past its deadline."""

    def __init__(self, deadline: float, *, tick: float = 0.1) -> None:
        self.deadline = deadline
        self._tick = tick
        self._calls: dict[int, tuple[float, psycopg.Connection[Any]]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0

    @contextlib.contextmanager
    def guard(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Watch `conn` for the duration of the block."""
        key = next(self._ids)
        with self._lock:
            self._calls[key] = (time.monotonic() + self.deadline, conn)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="workclaim-pg-watchdog", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._calls.pop(key, None)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            now = time.monotonic()
            with self._lock:
                late = [key for key, (due, _) in self._calls.items() if due <= now]
                overdue = [self._calls.pop(key)[1] for key in late]
            for conn in overdue:
                self.fired += 1
                _break(conn)

    def close(self) -> None:
        """Stop the watchdog thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=1)


def _break(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down so the blocked call returns with an error."""
    with contextlib.suppress(OSError, psycopg.Error):
        fd = conn.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
