"""Fan-out of "work may be claimable" signals to waiting claims, sync and async, in one process.

A backend's listener (PostgreSQL LISTEN, Redis subscriber, SQLite `data_version` poller) and its
own writes call `notify()`; a waiting claim reads `generation()` before it looks for work and then
waits for the generation to move on, so a signal between the look and the wait is never lost.
Async waiters are woken on their own loop and hold no thread while they wait.

After a `fork()` the child has a copy of each Wakeup but none of the parent's threads, so no
listener: every Wakeup is reset in the child (a fresh lock, no sync waiters) and its first waiter
there starts a listener of the child's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Callable


class Wakeup:
    """A generation counter with sync and async waiters; listeners start on the first waiter."""

    def __init__(self, on_first_waiter: Callable[[], None] | None = None) -> None:
        self._cond = threading.Condition()
        self._generation = 0
        self._waiters = 0
        self._async: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._on_first_waiter = on_first_waiter
        self._started = False
        _LIVE.add(self)

    def _after_fork_in_child(self) -> None:
        """Forget the parent's threads: its lock may have been held by one of them, its sync
        waiters and its listener thread do not exist here. The next waiter starts a listener."""
        self._cond = threading.Condition()
        self._waiters = 0
        self._started = False

    def generation(self) -> int:
        """The current generation; pass it to `wait` to wait for the next signal."""
        with self._cond:
            return self._generation

    @property
    def waiting(self) -> int:
        """How many calls are waiting now (sync and async)."""
        with self._cond:
            return self._waiters + len(self._async)

    def notify(self) -> None:
        """Wake every waiter. Cheap when nobody waits; safe from any thread."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
            pending = list(self._async)
        for loop, event in pending:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to wake
                loop.call_soon_threadsafe(event.set)

    def _start_listener(self) -> None:
        if not self._started and self._on_first_waiter is not None:
            self._started = True
            self._on_first_waiter()

    def wait(self, generation: int, timeout: float) -> bool:
        """Block until the generation moves past `generation` or `timeout` ends; True if moved."""
        with self._cond:
            self._start_listener()
            self._waiters += 1
            try:
                return self._cond.wait_for(lambda: self._generation != generation, timeout)
            finally:
                self._waiters -= 1

    async def wait_async(self, generation: int, timeout: float) -> bool:
        """Await the next signal after `generation`, holding no thread; True if one came."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._cond:
            self._start_listener()
            if self._generation != generation:
                return True
            self._async.add(entry)
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            with self._cond:
                self._async.discard(entry)


_LIVE: weakref.WeakSet[Wakeup] = weakref.WeakSet()  # every Wakeup of this process


def _reset_after_fork() -> None:
    """In a forked child: reset every live Wakeup (see `Wakeup._after_fork_in_child`)."""
    for wakeup in list(_LIVE):
        wakeup._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)
