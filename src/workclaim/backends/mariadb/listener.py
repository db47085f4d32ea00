"""The MariaDB wake-up poller: MariaDB has no LISTEN/NOTIFY, so one thread per backend polls a
cheap change signal on a session of its own and wakes this process's waiting claims when it
moves.

The signal (queries.sql `change_signal`, two index probes): the newest item id (every enqueue,
also a caller's transactional one, moves it at its commit) and the sum of `workclaim_signals`,
which the items' trigger bumps whenever an item becomes queued again (release, a retry, a
requeue, an expired lease reaped) and which flow control and schedules bump when they free slots
or change what is due. Time alone (a delayed item coming due, a lease expiring) is not a signal:
waiting claims look again at `next_due` for that.

Latency: while a claim waits the poller looks every 2 ms right after a change, backing off to
every 25 ms; while nobody waits, every 100 ms. So another process's commit wakes a waiting claim
within 25 ms (plus one round trip), typically a few ms during a busy stream, and at most about
100 ms for a wait that began during a quiet spell. Writes of this process wake its waiters at
once, with no poll. An error wakes the waiters (they look and meet it themselves) and the poller
reconnects after a bounded backoff.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress

import MySQLdb

from workclaim.backends._queryfile import load_queries
from workclaim.backends.mariadb.connection import Cursor, Session, cursor
from workclaim.backends.wakeup import Wakeup
from workclaim.errors import WorkclaimError

_POLL_MIN = 0.002
_POLL_MAX = 0.025
_POLL_IDLE = 0.1
_REOPEN_MIN = 0.05
_REOPEN_MAX = 2.0
_Q = load_queries("workclaim.backends.mariadb", "queries.sql")
_SIGNAL = _Q["change_signal"]


def bump(cur: Cursor) -> None:
    """Bump the change signal in the caller's transaction: other processes' pollers wake their
    waiting claims once it commits. For writes the items' trigger does not see: flow control
    freeing slots or lifting a pause, schedules changing what is due."""
    cur.execute(_Q["signal"], ())


class Listener:
    """A daemon thread polling the change signal; `stop()` ends it."""

    def __init__(self, connect: Callable[[], Session], wakeup: Wakeup) -> None:
        self._connect = connect
        self._wakeup = wakeup
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._poll, name="workclaim-mariadb-poller", daemon=True
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
        backoff = _REOPEN_MIN
        while not self._stop.is_set():
            conn: Session | None = None
            try:
                conn = self._connect()
                last = _signal(conn)
                backoff = _REOPEN_MIN
                # The first reading wakes the waiters too: a commit made before this baseline
                # (before the poller started, or while it was reconnecting) must not go unseen.
                self._wakeup.notify()
                self._watch(conn, last)
            except (MySQLdb.MySQLError, WorkclaimError):
                self._wakeup.notify()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _REOPEN_MAX)
            finally:
                if conn is not None:
                    with suppress(MySQLdb.MySQLError):
                        conn.close()

    def _watch(self, conn: Session, last: tuple[int, int]) -> None:
        pause = _POLL_MIN
        while not self._stop.is_set():
            self._stop.wait(pause if self._wakeup.waiting else _POLL_IDLE)
            if self._stop.is_set():
                return
            now = _signal(conn)
            if now != last:
                last = now
                pause = _POLL_MIN
                self._wakeup.notify()
            else:
                pause = min(pause * 2, _POLL_MAX)


def _signal(conn: Session) -> tuple[int, int]:
    cur = cursor(conn)
    try:
        cur.execute(_SIGNAL)
        newest, bumps = cur.fetchone()
        return int(newest), int(bumps)
    finally:
        cur.close()
