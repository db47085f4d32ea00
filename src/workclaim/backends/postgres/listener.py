"""The LISTEN thread: one dedicated connection per backend that turns NOTIFYs into wake-ups.

It is not a pool connection, so no waiting claim ever holds one. After connecting (and after
every reconnect) it signals once, because a notification sent while it was not listening is
lost: waiters then look again instead of sleeping through work that is already there.

Through a transaction pooler with no direct URL there is no session to LISTEN on: the `Poller`
signals every `POLL_SECONDS` instead (see pooler.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

_POLL_SECONDS = 0.2
_RETRY_MIN = 0.05
_RETRY_MAX = 2.0


class Listener:
    """A daemon thread LISTENing on `channel`, calling `on_signal` for every notification."""

    def __init__(
        self,
        conninfo: str,
        connect_kwargs: dict[str, Any],
        channel: str,
        on_signal: Callable[[], None],
    ) -> None:
        self._conninfo = conninfo
        self._kwargs = connect_kwargs
        self._channel = channel
        self._on_signal = on_signal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workclaim-pg-listener", daemon=True)

    def start(self) -> None:
        """Start listening in the background (returns at once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close its connection; waits at most a little over a poll."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=_POLL_SECONDS * 5)

    def _connect(self) -> psycopg.Connection[Any]:
        """A connection LISTENing on the channel."""
        conn = psycopg.connect(self._conninfo, autocommit=True, **self._kwargs)
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        return conn

    def _run(self) -> None:
        pause = _RETRY_MIN
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except psycopg.Error:
                self._stop.wait(pause)
                pause = min(pause * 2, _RETRY_MAX)
                continue
            try:
                pause = _RETRY_MIN
                self._on_signal()  # anything sent before LISTEN took effect is looked for now
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=_POLL_SECONDS):
                        self._on_signal()
            except psycopg.Error:
                self._on_signal()  # the connection broke: waiters look again, then wait anew
                self._stop.wait(pause)
            finally:
                conn.close()


class Poller:
    """A daemon thread calling `on_signal` every `interval` seconds: waiting claims look again
    that often, where no LISTEN connection can be had."""

    def __init__(self, interval: float, on_signal: Callable[[], None]) -> None:
        self._interval = interval
        self._on_signal = on_signal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workclaim-pg-poller", daemon=True)

    def start(self) -> None:
        """Start signalling in the background (returns at once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it wakes at once)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=_POLL_SECONDS * 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._on_signal()
