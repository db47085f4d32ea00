"""The heartbeat thread: renews the leases whose handlers are still working.

One thread per `Worker.run()`, ticking a quarter of the heartbeat interval (at most a second),
renews each working lease when its next beat is due. A refused heartbeat marks the lease lost
(the handler sees `ctx.lost`) unless the runtime itself ended the lease meanwhile. A beat that
runs more than half a lease after it was due (this thread got no CPU: a handler holding the GIL,
an overloaded host) is warned about once per lease, with how late it ran.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from workclaim.errors import LeaseLost, WorkclaimError
from workclaim.models import Lease
from workclaim.worker._context import Context, Running
from workclaim.worker._state import FINISHING, WORKING

log = logging.getLogger("workclaim.worker")


class Renews(Protocol):
    """What heartbeating needs from the worker's source."""

    def heartbeat(self, lease: Lease) -> Lease: ...


class Heartbeats:
    """Keeps the leases in `running` (shared with the runtime, guarded by `cond`) alive.

    `lose(ctx, when)` marks a lease lost and counts it (called under `cond`), True the first
    time; `lost(lease)` is then called once the lock is released (the `on_finished` hook)."""

    def __init__(
        self,
        source: Renews,
        running: dict[int, Running],
        cond: threading.Condition,
        every: float,
        lose: Callable[[Context, str], bool],
        lost: Callable[[Lease], None] = lambda lease: None,
    ) -> None:
        self.source = source
        self.running = running
        self.cond = cond
        self.every = every
        self.lose = lose
        self.lost = lost
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="workclaim-heartbeat", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread and wait up to `timeout` seconds for it."""
        self._ended.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        tick = min(self.every / 4, 1.0)
        while not self._ended.wait(tick):
            self.tick()

    def tick(self) -> None:
        """Renew every lease whose beat is due, warning first about one that is far overdue."""
        with self.cond:
            now = time.monotonic()
            due = [
                r
                for r in self.running.values()
                if r.phase is WORKING and not r.ctx.lost.is_set() and r.next_beat <= now
            ]
        for running in due:
            _warn_if_late(running, now)
            self.beat(running)

    def beat(self, running: Running) -> None:
        """Renew one lease; its handler's deadline counts from when the request was sent."""
        ctx = running.ctx
        started = time.monotonic()
        try:
            renewed = self.source.heartbeat(ctx.lease)
        except LeaseLost:
            with self.cond:
                if running.phase is not WORKING:  # we ended the lease: not a loss
                    return
                # Under the lock: the handler sees it set.
                newly = self.lose(ctx, "(heartbeat refused)")
            if newly:
                self.lost(ctx.lease)
            return
        except WorkclaimError as exc:
            log.warning("item %d: heartbeat failed (%s)", ctx.lease.id, type(exc).__name__)
            running.next_beat = time.monotonic() + min(1.0, self.every)
            return
        with self.cond:
            if running.phase is FINISHING:  # reported meanwhile: keep the lease it was sent with
                return
            ctx._deadline = started + renewed.lease_seconds  # from the request, not the reply
            ctx.lease = renewed  # after the deadline: a handler seeing it sees the new deadline
        running.next_beat = started + self.every


def _warn_if_late(running: Running, now: float) -> None:
    """Warn (once per lease) when a beat runs more than half the lease after it was due."""
    late = now - running.next_beat
    lease = running.ctx.lease
    if running.warned_late or late <= lease.lease_seconds / 2:
        return
    running.warned_late = True
    log.warning(
        "item %d: heartbeat ran %.1f s late (lease %.1f s); is the handler holding the GIL? "
        "run CPU-bound work in a process pool (docs/worker.md) or use a longer lease",
        lease.id,
        late,
        lease.lease_seconds,
    )
