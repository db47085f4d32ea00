"""The SQLite wake-up listener: a thread polling `PRAGMA data_version` while anyone waits.

Other processes' commits show up as a new `data_version` on a connection of ours (reading it
takes no lock); the poller wakes the waiters at each change, polling with a short bounded
backoff while anyone waits and slowly while nobody does. Writes of this process notify
directly; an in-memory database needs no poller at all.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

from workclaim.backends.wakeup import Wakeup

_POLL_MIN = 0.001
_POLL_MAX = 0.02
_POLL_IDLE = 0.1
_REOPEN_MIN = 0.05  # the poller's pauses before it reopens its connection after an error
_REOPEN_MAX = 2.0


class Listener:
    """A daemon thread watching `data_version` on a connection of its own; `stop()` ends it."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], wakeup: Wakeup) -> None:
        self._connect = connect
        self._wakeup = wakeup
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._poll, name="workclaim-sqlite-poller", daemon=True
        )

    def start(self) -> None:
        """Start polling in the background (returns at once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; waits at most a second."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)

    def _poll(self) -> None:
        """Watch `data_version` until `stop()`. After any SQLite error, wake the waiters (they
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
        bounded backoff while anyone waits, until `stop()`; SQLite errors propagate."""
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


def _data_version(conn: sqlite3.Connection) -> int:
    """The connection's `PRAGMA data_version`: it changes when another connection commits."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
