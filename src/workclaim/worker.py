"""The worker runtime: claim, run a handler, heartbeat, complete or fail, shut down cleanly.

    from workclaim import Queue
    from workclaim.worker import Worker

    worker = Worker(Queue("sqlite:///work.db"), queues=["emails"], concurrency=4)

    @worker.handler
    def send(ctx):
        deliver(ctx.lease.payload, fence=ctx.lease.token)
        if ctx.lost.is_set():   # someone else may own the item now: stop early
            return None

    worker.run()                # until SIGTERM / SIGINT

The source is a `Queue` or an HTTP `Client` (same API). The runtime claims in batches up to its
free capacity with a long-poll `wait` (no tight loop), heartbeats every `lease * heartbeat_fraction`
while a handler runs (setting `ctx.lost` if the lease is lost), completes on return, fails with
the error and traceback on an exception, and on SIGTERM/SIGINT stops claiming, gives in-flight
work `grace` seconds, releases what is left, and returns.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from workclaim.errors import LeaseLost, ValidationError, WorkclaimError
from workclaim.models import Lease, Status
from workclaim.validation import check_lease, check_name, check_queues, check_wait

log = logging.getLogger("workclaim.worker")


class Source(Protocol):
    """What the runtime needs from a `Queue` or a `Client`."""

    def claim(
        self, queues: str | Sequence[str], *, worker: str, lease: float, max: int, wait: float
    ) -> list[Lease]: ...

    def heartbeat(self, lease: Lease) -> Lease: ...

    def complete(self, lease: Lease, *, result: Any = None) -> None: ...

    def release(self, lease: Lease) -> None: ...

    def fail(self, lease: Lease, error: object) -> Status: ...


@dataclass
class Context:
    """What a handler gets: its lease, an event set when the lease is lost, and the time left.

    `lost` is set when a heartbeat finds the lease gone (expired, or reclaimed by someone
    else): stop and drop the result. `stopping` is set when the worker shuts down and the grace
    period is over: the lease has been released, so stop as soon as you can.
    """

    lease: Lease
    lost: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    _deadline: float = 0.0

    @property
    def token(self) -> int:
        """The lease's fencing token (pass it to side effects that can check it)."""
        return self.lease.token

    @property
    def attempt(self) -> int:
        """Which execution this is (1 for the first)."""
        return self.lease.attempt

    def time_left(self) -> float:
        """Seconds until the lease expires unless a heartbeat extends it (by this host's
        monotonic clock, measured from when the claim or last heartbeat returned)."""
        return max(0.0, self._deadline - time.monotonic())


Handler = Callable[[Context], Any]


@dataclass
class _Running:
    """One lease being worked on."""

    ctx: Context
    thread: threading.Thread | None = None
    next_beat: float = 0.0
    finishing: bool = False
    released: bool = False


class Worker:
    """Runs a handler over items claimed from `queues`, `concurrency` at a time."""

    def __init__(
        self,
        source: Source | Any,
        *,
        queues: str | Sequence[str],
        concurrency: int = 1,
        lease: float = 30.0,
        wait: float = 5.0,
        grace: float = 30.0,
        heartbeat_fraction: float = 1 / 3,
        name: str | None = None,
    ) -> None:
        self.source: Source = source
        self.queues = check_queues(queues)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError(f"concurrency must be a positive integer, got {concurrency!r}")
        self.concurrency = concurrency
        self.lease = check_lease(lease)
        self.wait = check_wait(wait)
        if not 0 <= grace <= 86_400:
            raise ValidationError("grace must be between 0 and 86400 seconds")
        self.grace = float(grace)
        if not 0.05 <= heartbeat_fraction <= 0.9:
            raise ValidationError("heartbeat_fraction must be between 0.05 and 0.9")
        self.heartbeat_every = self.lease * heartbeat_fraction
        default = f"{socket.gethostname()}-{os.getpid()}"[:128]
        self.name = check_name(name or default.replace("_", "-"), "worker name")
        # Over HTTP the server names the worker after the bearer token unless told otherwise.
        over_http = str(getattr(source, "url", "")).startswith(("http://", "https://"))
        self._claim_as: Any = None if over_http and name is None else self.name
        self._handler: Handler | None = None
        self._running: dict[int, _Running] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._stop_at: float | None = None
        self.completed = 0
        self.failed = 0
        self.released = 0

    # -- wiring ----------------------------------------------------------------------------
    def handler(self, fn: Handler) -> Handler:
        """Decorator: make `fn(ctx)` this worker's handler (sync or `async def`)."""
        self._handler = fn
        return fn

    def stop(self) -> None:
        """Stop claiming and start the grace period (what SIGTERM and SIGINT do)."""
        with self._cond:
            if self._stop_at is None:
                self._stop_at = time.monotonic()
            self._stop.set()
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        """Handlers running now."""
        with self._cond:
            return len(self._running)

    # -- main loop -------------------------------------------------------------------------
    def run(self, fn: Handler | None = None, *, install_signals: bool = True) -> None:
        """Work until `stop()` (or SIGTERM/SIGINT, when called from the main thread), then
        shut down gracefully and return."""
        if fn is not None:
            self._handler = fn
        if self._handler is None:
            raise ValidationError("no handler: pass one to run() or decorate it with @handler")
        restore = self._install_signals() if install_signals else {}
        beats = threading.Thread(target=self._heartbeats, name="workclaim-heartbeat", daemon=True)
        beats.start()
        try:
            self._claim_loop()
            self._shutdown()
        finally:
            self._stop.set()
            with self._cond:
                self._cond.notify_all()
            beats.join(5)
            for sig, previous in restore.items():
                signal.signal(sig, previous)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping (grace %.1fs)", signum, self.grace)
            self.stop()

        return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _claim_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                free = self.concurrency - len(self._running)
                if free <= 0:
                    self._cond.wait(1.0)
                    continue
            try:
                leases = self.source.claim(
                    self.queues, worker=self._claim_as, lease=self.lease, max=free, wait=self.wait
                )
            except WorkclaimError as exc:
                log.warning("claim failed (%s); retrying in a second", type(exc).__name__)
                self._stop.wait(1.0)
                continue
            for lease in leases:
                if self._stop.is_set():
                    self._give_back(lease)
                else:
                    self._start(lease)

    def _start(self, lease: Lease) -> None:
        now = time.monotonic()
        ctx = Context(lease=lease, _deadline=now + lease.lease_seconds)
        running = _Running(ctx=ctx, next_beat=now + self.heartbeat_every)
        thread = threading.Thread(
            target=self._work, args=(running,), name=f"workclaim-item-{lease.id}", daemon=True
        )
        running.thread = thread
        with self._cond:
            self._running[lease.id] = running
        thread.start()

    # -- one item --------------------------------------------------------------------------
    def _work(self, running: _Running) -> None:
        ctx = running.ctx
        assert self._handler is not None
        try:
            outcome: tuple[str, Any] = ("complete", self._call(ctx))
        except Exception as exc:
            text = "".join(traceback.format_exception(exc))
            outcome = ("fail", f"{type(exc).__name__}: {exc}\n{text}")
        try:
            with self._cond:
                if running.released or ctx.lost.is_set():
                    log.info("item %d: lease lost or released; result dropped", ctx.lease.id)
                    return
                running.finishing = True
            self._finish(ctx, *outcome)
        finally:
            with self._cond:
                self._running.pop(ctx.lease.id, None)
                self._cond.notify_all()

    def _call(self, ctx: Context) -> Any:
        assert self._handler is not None
        if inspect.iscoroutinefunction(self._handler):
            return asyncio.run(self._handler(ctx))
        return self._handler(ctx)

    def _finish(self, ctx: Context, kind: str, value: Any) -> None:
        lease = ctx.lease
        try:
            if kind == "complete":
                try:
                    self.source.complete(lease, result=value)
                    self.completed += 1
                    return
                except ValidationError as exc:  # the result is not JSON or too large
                    value = f"the handler's result was refused: {exc}"
            self.source.fail(lease, value)
            self.failed += 1
        except LeaseLost:
            ctx.lost.set()
            log.info("item %d: lease lost before it could be %sd", lease.id, kind)
        except WorkclaimError as exc:
            log.warning("item %d: could not %s (%s)", lease.id, kind, type(exc).__name__)

    # -- heartbeats ------------------------------------------------------------------------
    def _heartbeats(self) -> None:
        tick = min(self.heartbeat_every / 4, 1.0)
        while True:
            with self._cond:
                if self._stop.is_set() and not self._running:
                    return
                due = [
                    r
                    for r in self._running.values()
                    if not r.finishing
                    and not r.released
                    and not r.ctx.lost.is_set()
                    and r.next_beat <= time.monotonic()
                ]
            for running in due:
                self._beat(running)
            with self._cond:
                if self._stop.is_set() and not self._running:
                    return
                self._cond.wait(tick)

    def _beat(self, running: _Running) -> None:
        ctx = running.ctx
        started = time.monotonic()
        try:
            renewed = self.source.heartbeat(ctx.lease)
        except LeaseLost:
            log.info("item %d: lease lost (heartbeat refused)", ctx.lease.id)
            ctx.lost.set()
            return
        except WorkclaimError as exc:
            log.warning("item %d: heartbeat failed (%s)", ctx.lease.id, type(exc).__name__)
            running.next_beat = time.monotonic() + min(1.0, self.heartbeat_every)
            return
        ctx.lease = renewed
        ctx._deadline = started + renewed.lease_seconds
        running.next_beat = started + self.heartbeat_every

    # -- shutdown --------------------------------------------------------------------------
    def _shutdown(self) -> None:
        stop_at = self._stop_at if self._stop_at is not None else time.monotonic()
        deadline = stop_at + self.grace
        with self._cond:
            while self._running and time.monotonic() < deadline:
                self._cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            leftover = [r for r in self._running.values() if not r.finishing]
            for running in leftover:
                running.released = True
                running.ctx.stopping.set()
            finishing = [r for r in self._running.values() if r.finishing]
        for running in leftover:
            self._give_back(running.ctx.lease)
        for running in finishing:  # already completing or failing: let that call end
            if running.thread is not None:
                running.thread.join(10)
        log.info(
            "stopped: %d completed, %d failed, %d released",
            self.completed,
            self.failed,
            self.released,
        )

    def _give_back(self, lease: Lease) -> None:
        try:
            self.source.release(lease)
            self.released += 1
        except LeaseLost:
            pass  # already someone else's: nothing to give back
        except WorkclaimError as exc:
            log.warning("item %d: release failed (%s)", lease.id, type(exc).__name__)
