"""The `Worker`: one claimer thread feeding a pool of handler threads, and shutdown.

The claimer reports finished leases and claims new ones in one round trip per turn (the fused
path; `_batching` sizes the turns), handlers run on `concurrency` threads, `_heartbeats` keeps
their leases alive, and `stop()` moves the worker through `WorkerState` to a clean exit.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import queue as queue_module
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from types import FrameType
from typing import Any

from workclaim import otel
from workclaim._deprecated import renamed
from workclaim.api import QueueAPI
from workclaim.errors import LeaseLost, StorageFailed, ValidationError, WorkclaimError
from workclaim.models import Lease
from workclaim.queue import Queue
from workclaim.retry import Backoff
from workclaim.scheduler import Scheduler
from workclaim.validation import (
    MAX_BATCH,
    check_batch,
    check_lease,
    check_name,
    check_queues,
    check_timeout,
    check_wait,
)
from workclaim.worker import _handlers
from workclaim.worker._batching import BLOCKED, GO, BatchSizer
from workclaim.worker._context import Context, Handler, Running
from workclaim.worker._heartbeats import Heartbeats
from workclaim.worker._state import (
    DRAINING,
    FINISHING,
    READY,
    RELEASED,
    RUNNING,
    STOPPED,
    STOPPING,
    WORKING,
    Outcome,
    WorkerState,
)
from workclaim.worker._steering import (
    Failure,
    HandlerTimeout,
    Limits,
    bounded,
    failure_of,
    limits_for,
)

log = logging.getLogger("workclaim.worker")


class Worker:
    """Runs a handler over items claimed from `queues`, `concurrency` at a time; with
    `scheduler=True` and a `Queue` source, also fires the store's schedules while it claims."""

    @renamed(lease="lease_seconds")
    def __init__(
        self,
        source: QueueAPI,
        *,
        queues: str | Sequence[str],
        concurrency: int = 1,
        lease_seconds: float = 30.0,
        wait: float = 5.0,
        grace: float = 30.0,
        heartbeat_fraction: float = 1 / 3,
        name: str | None = None,
        fused: bool | None = None,
        max_batch: int | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        scheduler: bool = False,
        on_finished: Callable[[Lease, Outcome], None] | None = None,
    ) -> None:
        self.source = source
        # Called once per lease after the store acknowledged how it ended (see `_finished`).
        self.on_finished = on_finished
        # A scheduler fires the store's schedules beside the claimer; it needs the store itself,
        # so a worker over HTTP runs none (the service does, with `serve --scheduler`).
        self.scheduler = bool(scheduler) and isinstance(source, Queue)
        self._scheduler_asked = bool(scheduler)
        self.queues = check_queues(queues)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError(f"concurrency must be a positive integer, got {concurrency!r}")
        self.concurrency = concurrency
        self.lease_seconds = check_lease(lease_seconds)
        self.wait = check_wait(wait)
        if not 0 <= grace <= 86_400:
            raise ValidationError("grace must be between 0 and 86400 seconds")
        self.grace = float(grace)
        if not 0.05 <= heartbeat_fraction <= 0.9:
            raise ValidationError("heartbeat_fraction must be between 0.05 and 0.9")
        self.heartbeat_every = self.lease_seconds * heartbeat_fraction
        # Each run's bounds (a task dispatcher gives its own per item: see `limits_for`).
        self.limits = Limits(
            timeout=None if timeout is None else check_timeout(timeout), backoff=backoff
        )
        # The fused path needs `complete_and_claim` (every Queue and Client has it).
        can_fuse = callable(getattr(source, "complete_and_claim", None))
        if fused and not can_fuse:
            raise ValidationError("fused=True needs a source with complete_and_claim")
        self.fused = can_fuse if fused is None else bool(fused)
        self.max_batch = check_batch(
            min(concurrency, MAX_BATCH) if max_batch is None else max_batch, "max_batch"
        )
        default = f"{socket.gethostname()}-{os.getpid()}"[:128]
        self.name = check_name(name or default.replace("_", "-"), "worker name")
        # Over HTTP the server names the worker after the bearer token unless told otherwise.
        over_http = str(getattr(source, "url", "")).startswith(("http://", "https://"))
        self._claim_as: Any = None if over_http and name is None else self.name
        self._handler: Handler | None = None
        self._run_handler: otel.Call = self._call  # in a span once `run` finds a tracer
        self._running: dict[int, Running] = {}
        self._done: list[Running] = []  # finished, for the claimer's next fused call
        self._polling = False  # the claimer is in a long poll: handlers report their own items
        self._jobs: queue_module.SimpleQueue[Running | None] = queue_module.SimpleQueue()
        self._sizer = BatchSizer(self.max_batch)  # the claim size and how long a turn lingers
        self._cond = threading.Condition()
        self._state: WorkerState = READY  # set under _cond; read bare where a stale read is fine
        self._stop_at: float | None = None
        self.completed = 0
        self.failed = 0
        self.released = 0
        self.lost = 0
        self.round_trips = 0  # claim / complete_and_claim calls made by the claimer
        self._fatal: StorageFailed | None = None  # the store's disk failed: stop, then raise it

    # -- wiring ----------------------------------------------------------------------------
    def handler(self, fn: Handler) -> Handler:
        """Decorator: make `fn(ctx)` this worker's handler (sync or `async def`). Refuses a
        handler that cannot take the one Context argument."""
        _handlers.check(fn)
        self._handler = fn
        return fn

    def stop(self) -> None:
        """Stop claiming and start the grace period (what SIGTERM and SIGINT do)."""
        with self._cond:
            if self._stop_at is None:
                self._stop_at = time.monotonic()
            self._advance(DRAINING)

    def _advance(self, state: WorkerState) -> None:
        """Move to `state` unless already there or past it, and wake the waiting threads."""
        with self._cond:
            if state.value > self._state.value:
                self._state = state
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        """Leases held now: handlers running, and finished items not yet reported."""
        with self._cond:
            return len(self._running)

    # -- main loop -------------------------------------------------------------------------
    def run(self, fn: Handler | None = None, *, install_signals: bool = True) -> None:
        """Work until `stop()` (or SIGTERM/SIGINT, when called from the main thread), then
        shut down gracefully and return."""
        if fn is not None:
            _handlers.check(fn)
            self._handler = fn
        if self._handler is None:
            raise ValidationError("no handler: pass one to run() or decorate it with @handler")
        # Traced or not is decided once per run: the handler's span takes its parent from the
        # trace context an item carries, when the handler can read one (`trace_context`).
        self._run_handler = otel.handler_tracing(
            self._call, getattr(self._handler, "trace_context", None)
        )
        restore = self._install_signals() if install_signals else {}
        with self._cond:  # after stop(), or a second time: no claims, straight to shutdown
            if self._state is READY:
                self._state = RUNNING
        self._jobs = queue_module.SimpleQueue()  # a fresh one: abandoned threads keep the old
        beats = Heartbeats(
            self.source,
            self._running,
            self._cond,
            self.heartbeat_every,
            self._mark_lost,
            lambda lease: self._finished(lease, Outcome.LOST),
        )
        beats.start()
        pool = [
            threading.Thread(
                target=self._pool_thread,
                args=(self._jobs,),
                name=f"workclaim-handler-{n}",
                daemon=True,
            )
            for n in range(self.concurrency)
        ]
        for thread in pool:
            thread.start()
        log.info(
            "worker %s: claiming from %s, concurrency %d, %s, %s",
            self.name if self._claim_as is not None else "named after its token (over HTTP)",
            ",".join(self.queues),
            self.concurrency,
            f"fused (batch up to {self.max_batch})" if self.fused else "claim + complete",
            self._scheduler_text(),
        )
        try:
            with self._scheduler_beside():  # fires slots while the worker claims
                self._claim_loop()
            self._shutdown()
        finally:
            self._advance(STOPPED)
            for _ in pool:
                self._jobs.put(None)
            beats.stop(5)
            for sig, previous in restore.items():
                signal.signal(sig, previous)
        if self._fatal is not None:
            raise self._fatal

    def _scheduler_beside(self) -> AbstractContextManager[object]:
        """The scheduler thread for the run (stopped with the worker), or nothing."""
        if not self.scheduler:
            return nullcontext()
        assert isinstance(self.source, Queue)
        return Scheduler(self.source)

    def _scheduler_text(self) -> str:
        if self.scheduler:
            return "scheduler on"
        if self._scheduler_asked:  # but the worker has no store access
            return "no scheduler (over HTTP; the service runs one with `serve --scheduler`)"
        return "no scheduler"

    def _storage_failed(self, exc: StorageFailed) -> None:
        """The store's disk failed a write or sync: its queue refuses every later call, so this
        worker stops (its leases expire and are claimed again elsewhere) and `run` raises, for a
        supervisor to restart it once the disk is healthy."""
        log.error("the store's disk failed (%s): stopping this worker", exc)
        self._fatal = exc
        with self._cond:  # no grace period: nothing can be reported to this store any more
            self._stop_at = time.monotonic() - self.grace
        self.stop()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping (grace %.1fs)", signum, self.grace)
            self.stop()

        return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _free(self) -> int:
        """Handler threads free once the finished items are handed over (call under _cond)."""
        return self.concurrency - len(self._running) + len(self._done)

    def _claim_loop(self) -> None:
        """One turn per round trip: report what finished and claim up to the free capacity
        (fused), or, with nothing to report and a dry queue, long-poll for new work."""
        dry = False
        while True:
            with self._cond:
                self._wait_for_turn(dry)
                if self._state is not RUNNING:
                    return
                want = min(self._free(), self._sizer.size)  # the finished items count as free
                done, self._done = self._done, []
                poll = not done and (dry or not self.fused)
                self._polling = poll and self.fused
            sent = time.monotonic()  # the store grants the leases after this moment
            try:
                leases = self._claim(want) if poll else self._complete_and_claim(done, want)
            finally:
                if poll and self.fused:
                    with self._cond:
                        self._polling = False
            if leases is None:  # the store did not answer: wait a second, then try again
                with self._cond:
                    self._cond.wait_for(lambda: self._state is not RUNNING, 1.0)
                continue
            self._sizer.adapt(want, len(leases))
            dry = not leases
            for lease in leases:
                if self._state is not RUNNING:
                    self._give_back(Context(lease=lease))
                else:
                    self._start(lease, sent)

    def _wait_for_turn(self, dry: bool) -> None:
        """Wait (under _cond) until the batch sizer says a round trip is worth making, or the
        worker stops; while it says linger, wait at most its linger time in all."""
        sizer = self._sizer
        since: float | None = None
        while self._state is RUNNING:
            turn = sizer.turn(
                free=self._free(), finished=len(self._done), running=len(self._running), dry=dry
            )
            if turn is GO:
                return
            if turn is BLOCKED:
                since = None
                self._cond.wait(1.0)
                continue
            now = time.monotonic()
            since = now if since is None else since
            left = sizer.linger_left(since, now)
            if left <= 0:
                return
            self._cond.wait(left)

    def _claim(self, want: int) -> list[Lease] | None:
        """A long-poll claim (the queue ran dry, or the source cannot fuse); None on an error."""
        self.round_trips += 1
        try:
            return self.source.claim(
                self.queues,
                worker=self._claim_as,
                lease_seconds=self.lease_seconds,
                limit=want,
                wait=self.wait,
            )
        except StorageFailed as exc:
            self._storage_failed(exc)
            return None
        except WorkclaimError as exc:
            log.warning("claim failed (%s); retrying in a second", type(exc).__name__)
            return None

    def _complete_and_claim(self, done: list[Running], want: int) -> list[Lease] | None:
        """Report the finished items and claim up to `want` new ones in one round trip; None
        (the finished items kept for the next try) when the store did not answer."""
        source = self.source
        entries = [(r.ctx.lease, r.result) if r.result is not None else r.ctx.lease for r in done]
        self.round_trips += 1
        started = time.monotonic()
        try:
            lost, leases = source.complete_and_claim(
                entries,
                self.queues,
                worker=self._claim_as,
                lease_seconds=self.lease_seconds,
                limit=want,
            )
            self._sizer.timed(time.monotonic() - started)
        except ValidationError:
            # A result that is not JSON (or too large) spoils the whole call before anything
            # changes: report these items one by one, where each refused result fails its item.
            for running in done:
                self._report_alone(running)
            return []
        except StorageFailed as exc:
            self._storage_failed(exc)
            return None
        except WorkclaimError as exc:
            log.warning("complete_and_claim failed (%s); retrying in a second", type(exc).__name__)
            with self._cond:  # completions are idempotent: send them again next turn
                self._done[:0] = done
            return None
        refused = {(lease.id, lease.token) for lease in lost}
        with self._cond:
            for running in done:
                lease = running.ctx.lease
                if (lease.id, lease.token) not in refused:
                    self.completed += 1
                self._running.pop(lease.id, None)
            self._cond.notify_all()
        for running in done:  # the hooks run outside the lock
            lease = running.ctx.lease
            if (lease.id, lease.token) in refused:
                self._lose(running.ctx, "before it could be completed")
            else:
                self._finished(lease, Outcome.COMPLETED)
        return list(leases)

    def _report_alone(self, running: Running) -> None:
        try:
            self._finish(running.ctx, "complete", running.result)
        finally:
            with self._cond:
                self._running.pop(running.ctx.lease.id, None)
                self._cond.notify_all()

    def _start(self, lease: Lease, sent: float) -> None:
        """Hand a new lease to a handler thread. `sent`: when the claim that brought it was
        sent; its deadline and first heartbeat count from there, never from the reply."""
        ctx = Context(lease=lease, _deadline=sent + lease.lease_seconds)
        running = Running(ctx=ctx, next_beat=sent + self.heartbeat_every)
        with self._cond:
            self._running[lease.id] = running
        self._jobs.put(running)

    # -- one item --------------------------------------------------------------------------
    def _pool_thread(self, jobs: queue_module.SimpleQueue[Running | None]) -> None:
        while True:
            running = jobs.get()
            if running is None:
                return
            self._work(running)

    def _work(self, running: Running) -> None:
        ctx = running.ctx
        limits = limits_for(self._handler, ctx.lease, self.limits)
        timer = self._arm_timeout(running, limits)
        try:
            outcome: tuple[str, Any] = ("complete", self._run_handler(ctx, limits.timeout))
        except Exception as exc:
            assert self._handler is not None
            error = _handlers.error_text(self._handler, exc)
            outcome = ("fail", failure_of(exc, ctx.attempt, limits.backoff, error=error))
        finally:
            if timer is not None:
                timer.cancel()
        with self._cond:
            if running.phase is RELEASED or ctx.lost.is_set():
                log.info("item %d: lease lost or released; result dropped", ctx.lease.id)
                self._running.pop(ctx.lease.id, None)
                self._cond.notify_all()
                return
            running.phase = FINISHING
            if outcome[0] == "complete" and self.fused and not self._polling:
                running.result = outcome[1]  # the claimer reports it on its next round trip
                self._done.append(running)
                self._cond.notify_all()
                return
        try:
            self._finish(ctx, *outcome)
        finally:
            with self._cond:
                self._running.pop(ctx.lease.id, None)
                self._cond.notify_all()

    def _call(self, ctx: Context, timeout: float | None) -> Any:
        assert self._handler is not None
        if inspect.iscoroutinefunction(self._handler):
            return asyncio.run(bounded(self._handler(ctx), timeout))
        return self._handler(ctx)

    def _arm_timeout(self, running: Running, limits: Limits) -> threading.Timer | None:
        """For a sync handler with a timeout: a timer that fails its item when the timeout
        passes (async handlers are cancelled by `bounded` instead)."""
        if limits.timeout is None or inspect.iscoroutinefunction(self._handler):
            return None
        timer = threading.Timer(limits.timeout, self._time_out, (running, limits))
        timer.daemon = True
        timer.start()
        return timer

    def _time_out(self, running: Running, limits: Limits) -> None:
        """A sync handler ran past its timeout. Python cannot stop a thread, so its thread
        runs on (still counted against the concurrency) until the handler returns, and its
        result is dropped; the item is failed now (retried while attempts remain), heartbeats
        stop, and `ctx.stopping` and `ctx.lost` are set so a handler that checks them can quit."""
        ctx = running.ctx
        with self._cond:
            if running.phase is not WORKING or ctx.lost.is_set():
                return  # it finished, was released or was lost meanwhile
            running.phase = RELEASED
            ctx.stopping.set()
            ctx.lost.set()
        log.warning(
            "item %d: the handler ran past its timeout of %g s; failing the item (the thread "
            "runs on until the handler returns, its result dropped)",
            ctx.lease.id,
            limits.timeout,
        )
        exc = HandlerTimeout(f"the handler ran past its timeout of {limits.timeout:g} s")
        self._finish(ctx, "fail", failure_of(exc, ctx.attempt, limits.backoff))

    def _finish(self, ctx: Context, kind: str, value: Any) -> None:
        """Complete or fail one item on its own (failures, and completions while the claimer
        long-polls or when the source cannot fuse)."""
        lease = ctx.lease
        try:
            if kind == "complete":
                try:
                    self.source.complete(lease, result=value)
                    self._count(lease, Outcome.COMPLETED)
                    return
                except ValidationError as exc:  # the result is not JSON or too large: a
                    # programming error another attempt would repeat, so the item is dead now
                    value = Failure(f"the handler's result was refused: {exc}", retry=False)
            failure: Failure = value
            if failure.retry_delay is None:  # a source written before retry_delay still works
                self.source.fail(lease, failure.error, retry=failure.retry)
            else:
                self.source.fail(
                    lease, failure.error, retry=failure.retry, retry_delay=failure.retry_delay
                )
            self._count(lease, Outcome.FAILED)
        except LeaseLost:
            self._lose(ctx, f"before it could be {kind}d")
        except WorkclaimError as exc:
            log.warning("item %d: could not %s (%s)", lease.id, kind, type(exc).__name__)

    def _count(self, lease: Lease, outcome: Outcome) -> None:
        """Add one to the outcome's counter (handler threads finish items concurrently), then
        tell the hook."""
        with self._cond:
            setattr(self, outcome.value, getattr(self, outcome.value) + 1)
        self._finished(lease, outcome)

    def _finished(self, lease: Lease, outcome: Outcome) -> None:
        """Call `on_finished(lease, outcome)`, never under the worker's lock. The store has
        already acknowledged the outcome, so an exception in the hook is logged and changes
        nothing: the item stays as the store recorded it and the worker goes on."""
        if self.on_finished is None:
            return
        try:
            self.on_finished(lease, outcome)
        except Exception:
            log.exception(
                "item %d: on_finished raised (the item stays %s)", lease.id, outcome.value
            )

    def _lose(self, ctx: Context, when: str) -> None:
        """Mark a lease lost and count it in `lost`: once per lease, whichever of heartbeat,
        completion, failure or release finds out first; then tell the hook (not under a lock:
        the heartbeats, which hold it, use `_mark_lost` and call the hook after)."""
        if self._mark_lost(ctx, when):
            self._finished(ctx.lease, Outcome.LOST)

    def _mark_lost(self, ctx: Context, when: str) -> bool:
        """Mark and count a lost lease; True the first time."""
        with self._cond:
            if ctx.lost.is_set():
                return False
            ctx.lost.set()
            self.lost += 1
        log.info("item %d: lease lost %s", ctx.lease.id, when)
        return True

    # -- shutdown --------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Report what finishes within the grace period (claiming nothing: limit=0), release
        what does not, and wait briefly for completions and failures already under way."""
        stop_at = self._stop_at if self._stop_at is not None else time.monotonic()
        deadline = stop_at + self.grace
        self._drain_until(deadline, lambda: not self._running)
        with self._cond:
            self._advance(STOPPING)
            leftover = [r for r in self._running.values() if r.phase is not FINISHING]
            for running in leftover:
                running.phase = RELEASED
                running.ctx.stopping.set()
        for running in leftover:
            if not running.ctx.lost.is_set():  # a lost lease has nothing to give back
                self._give_back(running.ctx)
            with self._cond:
                self._running.pop(running.ctx.lease.id, None)
        # Completions or failures already under way: let those calls end (bounded).
        self._drain_until(time.monotonic() + 10, lambda: not self._running)
        log.info(
            "stopped: %d completed, %d failed, %d released, %d lost",
            self.completed,
            self.failed,
            self.released,
            self.lost,
        )

    def _drain_until(self, deadline: float, finished: Callable[[], bool]) -> None:
        """Until `finished()` or the deadline: report finished items (fused, limit=0)."""
        while True:
            with self._cond:
                while not self._done and not finished() and time.monotonic() < deadline:
                    self._cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                done, self._done = self._done, []
            if done and self._complete_and_claim(done, 0) is None:
                if time.monotonic() >= deadline:
                    return  # the store is away: these leases expire and the items run again
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))  # retry backoff
                continue
            with self._cond:
                if finished() or (time.monotonic() >= deadline and not self._done):
                    return

    def _give_back(self, ctx: Context) -> None:
        """Release a lease at shutdown (a refusal means it was lost meanwhile: counted so)."""
        lease = ctx.lease
        try:
            self.source.release(lease)
            self._count(lease, Outcome.RELEASED)
        except LeaseLost:
            self._lose(ctx, "before it could be released")
        except WorkclaimError as exc:
            log.warning("item %d: release failed (%s)", lease.id, type(exc).__name__)
