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

The source is a `Queue` or an HTTP `Client` (same API). One claimer thread per worker hands the
leases its handlers finished to `complete_and_claim` and claims as many new items as it has free
capacity in the same round trip (the fused path), batching adaptively: the batch grows while full
batches keep coming and shrinks to what the queue had; once the queue runs dry the claimer
long-polls with `claim(wait=...)` (no tight loop) and handlers complete their own items meanwhile.
Handlers run on a pool of `concurrency` threads, heartbeat every `lease * heartbeat_fraction`
while they run (setting `ctx.lost` if the lease is lost), fail with the error and traceback on an
exception, and on SIGTERM/SIGINT the worker stops claiming, gives in-flight work `grace` seconds,
completes what finished, releases what is left, and returns.
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
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from workclaim.api import QueueAPI
from workclaim.errors import LeaseLost, ValidationError, WorkclaimError
from workclaim.models import Lease
from workclaim.validation import (
    MAX_BATCH,
    check_batch,
    check_lease,
    check_name,
    check_queues,
    check_wait,
)

log = logging.getLogger("workclaim.worker")

MAX_LINGER = 0.02  # seconds: the longest a turn waits for more handlers to finish


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
        """Seconds until the lease expires unless a heartbeat extends it, by this host's
        monotonic clock. Counted from when the claim or last heartbeat was *sent* (the store
        granted it later), so it errs short, never long: by the call's round trip, or by up to
        the long-poll wait after a claim that waited for work."""
        return max(0.0, self._deadline - time.monotonic())


Handler = Callable[[Context], Any]


@dataclass
class _Running:
    """One lease being worked on (or finished and waiting for the claimer to report it)."""

    ctx: Context
    next_beat: float = 0.0
    finishing: bool = False
    released: bool = False
    result: Any = None


class Worker:
    """Runs a handler over items claimed from `queues`, `concurrency` at a time."""

    def __init__(
        self,
        source: QueueAPI,
        *,
        queues: str | Sequence[str],
        concurrency: int = 1,
        lease: float = 30.0,
        wait: float = 5.0,
        grace: float = 30.0,
        heartbeat_fraction: float = 1 / 3,
        name: str | None = None,
        fused: bool | None = None,
        max_batch: int | None = None,
    ) -> None:
        self.source = source
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
        self._running: dict[int, _Running] = {}
        self._done: list[_Running] = []  # finished, for the claimer's next fused call
        self._polling = False  # the claimer is in a long poll: handlers report their own items
        self._jobs: queue_module.SimpleQueue[_Running | None] = queue_module.SimpleQueue()
        self._batch = 1  # the adaptive claim size (grows to max_batch, shrinks when dry)
        self._linger = -1.0  # how long a turn waits for a fuller batch: half a round trip
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._stop_at: float | None = None
        self.completed = 0
        self.failed = 0
        self.released = 0
        self.lost = 0
        self.round_trips = 0  # claim / complete_and_claim calls made by the claimer

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
        """Leases held now: handlers running, and finished items not yet reported."""
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
        self._ended.clear()
        self._jobs = queue_module.SimpleQueue()  # a fresh one: abandoned threads keep the old
        beats = threading.Thread(target=self._heartbeats, name="workclaim-heartbeat", daemon=True)
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
            "worker %s: claiming from %s, concurrency %d, %s",
            self.name,
            ",".join(self.queues),
            self.concurrency,
            f"fused (batch up to {self.max_batch})" if self.fused else "claim + complete",
        )
        try:
            self._claim_loop()
            self._shutdown()
        finally:
            self._stop.set()
            self._ended.set()
            for _ in pool:
                self._jobs.put(None)
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
                if self._stop.is_set():
                    return
                want = min(self._free(), self._batch)  # the finished items count as free
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
                self._stop.wait(1.0)
                continue
            self._adapt(want, len(leases))
            dry = not leases
            for lease in leases:
                if self._stop.is_set():
                    self._give_back(Context(lease=lease))
                else:
                    self._start(lease, sent)

    def _wait_for_turn(self, dry: bool) -> None:
        """Wait (under _cond) until a round trip is worth making: a full batch of capacity is
        free, or nothing else is running, or the queue is dry (a long poll needs no company);
        otherwise linger at most half a recent round trip for more handlers to finish, so a
        turn carries a batch instead of the first item that finished (cf. Nagle, group commit).
        """
        since: float | None = None
        while not self._stop.is_set():
            free = self._free()
            if not self._done and free <= 0:
                since = None
                self._cond.wait(1.0)
                continue
            if dry and not self._done:
                return
            if free >= self._batch or len(self._running) == len(self._done):
                return
            now = time.monotonic()
            since = now if since is None else since
            left = since + max(self._linger, 0.0) - now
            if left <= 0:
                return
            self._cond.wait(left)

    def _adapt(self, asked: int, got: int) -> None:
        """Grow the batch while full batches keep coming; shrink it to what the queue had."""
        if got >= asked:
            self._batch = min(self.max_batch, max(1, self._batch * 2))
        else:
            self._batch = max(1, got)

    def _claim(self, want: int) -> list[Lease] | None:
        """A long-poll claim (the queue ran dry, or the source cannot fuse); None on an error."""
        self.round_trips += 1
        try:
            return self.source.claim(
                self.queues, worker=self._claim_as, lease=self.lease, max=want, wait=self.wait
            )
        except WorkclaimError as exc:
            log.warning("claim failed (%s); retrying in a second", type(exc).__name__)
            return None

    def _complete_and_claim(self, done: list[_Running], want: int) -> list[Lease] | None:
        """Report the finished items and claim up to `want` new ones in one round trip; None
        (the finished items kept for the next try) when the store did not answer."""
        source = self.source
        entries = [(r.ctx.lease, r.result) if r.result is not None else r.ctx.lease for r in done]
        self.round_trips += 1
        started = time.monotonic()
        try:
            lost, leases = source.complete_and_claim(
                entries, self.queues, worker=self._claim_as, lease=self.lease, max=want
            )
            half = (time.monotonic() - started) / 2
            self._linger = min(
                MAX_LINGER, half if self._linger < 0 else 0.8 * self._linger + 0.2 * half
            )
        except ValidationError:
            # A result that is not JSON (or too large) spoils the whole call before anything
            # changes: report these items one by one, where each refused result fails its item.
            for running in done:
                self._report_alone(running)
            return []
        except WorkclaimError as exc:
            log.warning("complete_and_claim failed (%s); retrying in a second", type(exc).__name__)
            with self._cond:  # completions are idempotent: send them again next turn
                self._done[:0] = done
            return None
        refused = {(lease.id, lease.token) for lease in lost}
        with self._cond:
            for running in done:
                lease = running.ctx.lease
                if (lease.id, lease.token) in refused:
                    self._lose(running.ctx, "before it could be completed")
                else:
                    self.completed += 1
                self._running.pop(lease.id, None)
            self._cond.notify_all()
        return list(leases)

    def _report_alone(self, running: _Running) -> None:
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
        running = _Running(ctx=ctx, next_beat=sent + self.heartbeat_every)
        with self._cond:
            self._running[lease.id] = running
        self._jobs.put(running)

    # -- one item --------------------------------------------------------------------------
    def _pool_thread(self, jobs: queue_module.SimpleQueue[_Running | None]) -> None:
        while True:
            running = jobs.get()
            if running is None:
                return
            self._work(running)

    def _work(self, running: _Running) -> None:
        ctx = running.ctx
        try:
            outcome: tuple[str, Any] = ("complete", self._call(ctx))
        except Exception as exc:
            text = "".join(traceback.format_exception(exc))
            outcome = ("fail", f"{type(exc).__name__}: {exc}\n{text}")
        with self._cond:
            if running.released or ctx.lost.is_set():
                log.info("item %d: lease lost or released; result dropped", ctx.lease.id)
                self._running.pop(ctx.lease.id, None)
                self._cond.notify_all()
                return
            running.finishing = True
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

    def _call(self, ctx: Context) -> Any:
        assert self._handler is not None
        if inspect.iscoroutinefunction(self._handler):
            return asyncio.run(self._handler(ctx))
        return self._handler(ctx)

    def _finish(self, ctx: Context, kind: str, value: Any) -> None:
        """Complete or fail one item on its own (failures, and completions while the claimer
        long-polls or when the source cannot fuse)."""
        lease = ctx.lease
        try:
            if kind == "complete":
                try:
                    self.source.complete(lease, result=value)
                    self._count("completed")
                    return
                except ValidationError as exc:  # the result is not JSON or too large
                    value = f"the handler's result was refused: {exc}"
            self.source.fail(lease, value)
            self._count("failed")
        except LeaseLost:
            self._lose(ctx, f"before it could be {kind}d")
        except WorkclaimError as exc:
            log.warning("item %d: could not %s (%s)", lease.id, kind, type(exc).__name__)

    def _count(self, outcome: str) -> None:
        """Add one to a counter (handler threads finish items concurrently)."""
        with self._cond:
            setattr(self, outcome, getattr(self, outcome) + 1)

    def _lose(self, ctx: Context, when: str) -> None:
        """Mark a lease lost and count it in `lost`: once per lease, whichever of heartbeat,
        completion, failure or release finds out first."""
        with self._cond:
            if ctx.lost.is_set():
                return
            ctx.lost.set()
            self.lost += 1
        log.info("item %d: lease lost %s", ctx.lease.id, when)

    # -- heartbeats ------------------------------------------------------------------------
    def _heartbeats(self) -> None:
        tick = min(self.heartbeat_every / 4, 1.0)
        while not self._ended.wait(tick):
            with self._cond:
                now = time.monotonic()
                due = [
                    r
                    for r in self._running.values()
                    if not r.finishing
                    and not r.released
                    and not r.ctx.lost.is_set()
                    and r.next_beat <= now
                ]
            for running in due:
                self._beat(running)

    def _beat(self, running: _Running) -> None:
        ctx = running.ctx
        started = time.monotonic()
        try:
            renewed = self.source.heartbeat(ctx.lease)
        except LeaseLost:
            with self._cond:
                if running.finishing or running.released:  # we ended the lease: not a loss
                    return
                self._lose(ctx, "(heartbeat refused)")  # under the lock: _work sees it set
            return
        except WorkclaimError as exc:
            log.warning("item %d: heartbeat failed (%s)", ctx.lease.id, type(exc).__name__)
            running.next_beat = time.monotonic() + min(1.0, self.heartbeat_every)
            return
        with self._cond:
            if running.finishing:  # reported meanwhile: the old lease is the one it was sent with
                return
            ctx._deadline = started + renewed.lease_seconds  # from the request, not the reply
            ctx.lease = renewed  # after the deadline: a handler seeing it sees the new deadline
        running.next_beat = started + self.heartbeat_every

    # -- shutdown --------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Report what finishes within the grace period (claiming nothing: max=0), release
        what does not, and wait briefly for completions and failures already under way."""
        stop_at = self._stop_at if self._stop_at is not None else time.monotonic()
        deadline = stop_at + self.grace
        self._drain_until(deadline, lambda: not self._running)
        with self._cond:
            leftover = [r for r in self._running.values() if not r.finishing]
            for running in leftover:
                running.released = True
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
        """Until `finished()` or the deadline: report finished items (fused, max=0)."""
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
            self._count("released")
        except LeaseLost:
            self._lose(ctx, "before it could be released")
        except WorkclaimError as exc:
            log.warning("item %d: release failed (%s)", lease.id, type(exc).__name__)
