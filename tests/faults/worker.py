"""The worker process of the fault scenarios: claim, work, write a fenced effect, complete, and
record every call in its own history file for the checker.

Started with the `spawn` context (one store connection per process, nothing crosses a fork). Crash
points come from `WORKCLAIM_CRASH_AT` (see tests/support/crashpoints.py), set through the config's
`env`. A timeout or connection error is recorded as `info` (indeterminate), `LeaseLost` as `fail`.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults.effects import EffectStore
from tests.support import crashpoints
from workclaim import Queue, Settings
from workclaim.bench.history import Op, Recorder, grant_fields, micros
from workclaim.errors import BackendError, LeaseLost, StorageFailed, WorkclaimError
from workclaim.models import Lease

ERROR_PAUSE = 0.05  # back off a little after a store error, so a dead store is not spun on
ENQUEUE_PAUSE = 0.05  # between an enqueuer's batches
OPEN_SECONDS = 60.0  # how long a starting worker waits for its store to answer


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What one worker process does.

    - `job_seconds`: how long each job takes; `heartbeat_every` > 0 heartbeats that often meanwhile.
    - `try_all_fenced`: after the job, try heartbeat, effect, complete, release and fail in turn
      (the paused-holder scenario, where every one of them must be refused).
    - `max_items`: stop after this many claimed items (None: until told to stop).
    - `batch`: how many items each claim asks for.
    """

    url: str
    queue: str
    name: str
    history_dir: str
    effects: str
    lease: float = 1.0
    job_seconds: float = 0.0
    heartbeat_every: float = 0.0
    try_all_fenced: bool = False
    idle_wait: float = 0.2
    timeout: float = 5.0
    max_items: int | None = None
    batch: int = 1
    env: dict[str, str] = field(default_factory=dict)


def run(config: WorkerConfig, events: Any, stop: Any) -> None:
    """Process entry point: work until `stop` is set and a claim finds nothing."""
    os.environ.update(config.env)
    if events is not None and config.max_items is None:
        # A worker that runs until told to stop exits without waiting for the parent to read
        # every message (nobody reads a storm's to the end). One that stops by itself after
        # `max_items` keeps the queue's join at exit, so its last message (a holder's "fenced")
        # is flushed to the pipe before the process ends: the test reads it after the exit.
        events.cancel_join_thread()
    path = Path(config.history_dir) / f"{config.name}.{os.getpid()}.jsonl"
    with Recorder(path, process=f"{config.name}.{os.getpid()}") as rec:
        crashpoints.before_exit(rec.flush)
        Worker(config, rec, events).loop(stop)


class Worker:
    """One claim loop over a Queue of its own."""

    def __init__(self, config: WorkerConfig, rec: Recorder, events: Any) -> None:
        self.config = config
        self.rec = rec
        self.events = events
        self.effects = EffectStore(config.effects)
        self.queue: Any = None  # a Queue, or a workclaim.client.Client for http:// URLs

    def open_queue(self) -> Any:
        """This worker's Queue; opening it waits out a store that is down (bounded)."""
        deadline = time.monotonic() + OPEN_SECONDS
        while self.queue is None:
            if self.config.url.startswith(("http://", "https://")):
                from workclaim.client import Client

                self.queue = Client(self.config.url, timeout=self.config.timeout)
                return self.queue
            try:
                self.queue = Queue(self.config.url, settings=Settings(timeout=self.config.timeout))
            except BackendError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(ERROR_PAUSE)
                continue
            crashpoints.install(self.queue)
        return self.queue

    def _emit(self, *message: Any) -> None:
        if self.events is not None:
            self.events.put((self.config.name, os.getpid(), *message))

    def loop(self, stop: Any, *, empty_claims: int = 1) -> None:
        """Claim and work until `stop.is_set()` after `empty_claims` claims in a row found
        nothing (or `max_items` are done)."""
        cfg, done, empty = self.config, 0, 0
        try:
            self.open_queue()
            self._emit("ready")
            while cfg.max_items is None or done < cfg.max_items:
                op = self.rec.invoke("claim", worker=cfg.name, lease_seconds=cfg.lease)
                self.rec.flush()  # write-ahead: a call killed mid-flight still shows as unknown
                try:
                    leases = self.open_queue().claim(
                        cfg.queue,
                        worker=cfg.name,
                        lease_seconds=cfg.lease,
                        limit=cfg.batch,
                        wait=cfg.idle_wait,
                    )
                except WorkclaimError as exc:
                    self.unknown(op, exc)
                    continue
                if not leases:
                    self._done(op)
                    empty += 1
                    if empty >= empty_claims and stop.is_set():
                        return
                    continue
                empty = 0
                self.rec.ok_many(op, [grant_fields(lease) for lease in leases])
                self.rec.flush()
                for lease in leases:
                    self._emit("claimed", lease.id, lease.token)
                    self.work(lease)
                    done += 1
        finally:
            self.rec.flush()
            self.close()

    def close(self) -> None:
        """Close the effect store and the queue."""
        self.effects.close()
        if self.queue is not None:
            self.queue.close()

    def _done(self, op: Op, **fields: Any) -> None:
        self.rec.ok(op, **fields)
        self.rec.flush()

    def unknown(self, op: Op, exc: BaseException) -> None:
        self.rec.info(op, f"{type(exc).__name__}: {exc}")
        self.rec.flush()
        if isinstance(exc, StorageFailed):  # the queue refuses every later call: open another
            self.queue.close()
            self.queue = None
        if isinstance(exc, BackendError):
            time.sleep(ERROR_PAUSE)

    def work(self, lease: Lease) -> None:
        cfg = self.config
        crashpoints.reached("mid_job")
        end = time.monotonic() + cfg.job_seconds
        while (left := end - time.monotonic()) > 0:
            step = min(left, cfg.heartbeat_every) if cfg.heartbeat_every > 0 else left
            time.sleep(step)  # the job itself: simulated work of a known length
            if cfg.heartbeat_every > 0 and end - time.monotonic() > 0:
                new = self._fenced("heartbeat", lease)
                if new is None:
                    self._emit("lost", lease.id, lease.token)
                    return
                lease = new
        if cfg.try_all_fenced:
            self._try_all(lease)
            return
        if not self._effect(lease):
            return
        crashpoints.reached("after_effect")
        self._fenced("complete", lease)

    def _effect(self, lease: Lease) -> bool:
        accepted = self.effects.write(lease.id, lease.token, self.config.name)
        self._emit("effect", lease.id, lease.token, accepted)
        return accepted

    def _try_all(self, lease: Lease) -> None:
        """Every fenced call of a holder whose lease is gone; reports each outcome."""
        outcomes = {"effect": self._effect(lease)}
        for kind in ("heartbeat", "complete", "release", "fail"):
            outcomes[kind] = self._fenced(kind, lease) is not None
        self._emit("fenced", lease.id, lease.token, outcomes)

    def _fenced(self, kind: str, lease: Lease) -> Lease | None:
        """A fenced call, recorded; the (new) lease when accepted, None when refused or unknown."""
        cfg = self.config
        op = self.rec.invoke(
            kind,
            item_id=lease.id,
            token=lease.token,
            worker=cfg.name,
            lease_seconds=cfg.lease if kind == "heartbeat" else None,
        )
        self.rec.flush()
        q = self.open_queue()
        try:
            if kind == "heartbeat":
                new: Lease = q.heartbeat(lease, extend=cfg.lease)
                self._done(op, expires_at_us=micros(new.expires_at))
                return new
            if kind == "complete":
                q.complete(lease)
            elif kind == "release":
                q.release(lease)
            else:
                status = q.fail(lease, "fault test", retry=True)
                self._done(op, status=str(status))
                return lease
            self._done(op)
            return lease
        except LeaseLost as exc:
            self.rec.fail(op, f"LeaseLost: {exc}")
            self.rec.flush()
        except WorkclaimError as exc:
            self.unknown(op, exc)
        return None


def barrier_claims(config: WorkerConfig, barrier: Any, rounds: int, batch: int, out: Any) -> None:
    """Process entry point: `rounds` times, wait at the barrier with every other claimer, claim
    once (up to `batch` items, recorded), report how many it got, wait at the barrier again
    (everyone has claimed), complete what it got (recorded). Many claimers arriving together
    at a group with one free slot: exactly one may take it."""
    out.cancel_join_thread()
    path = Path(config.history_dir) / f"{config.name}.{os.getpid()}.jsonl"
    with (
        Recorder(path, process=f"{config.name}.{os.getpid()}") as rec,
        Queue(config.url, settings=Settings(timeout=config.timeout)) as q,
    ):
        for _ in range(rounds):
            barrier.wait(OPEN_SECONDS)
            op = rec.invoke("claim", worker=config.name, lease_seconds=config.lease)
            leases = q.claim(
                config.queue, worker=config.name, lease_seconds=config.lease, limit=batch
            )
            rec.ok_many(op, [grant_fields(lease) for lease in leases])
            rec.flush()
            out.put(len(leases))
            barrier.wait(OPEN_SECONDS)
            for lease in leases:
                done = rec.invoke(
                    "complete", item_id=lease.id, token=lease.token, worker=config.name
                )
                q.complete(lease)
                rec.ok(done)
            rec.flush()
            barrier.wait(OPEN_SECONDS)


def enqueue_loop(
    config: WorkerConfig, batch: int, payload_bytes: int, events: Any, stop: Any
) -> None:
    """Process entry point: enqueue batches (recorded) until `stop` is set; a writer to kill.
    Sends "ready" once its queue is open."""
    events.cancel_join_thread()
    path = Path(config.history_dir) / f"{config.name}.{os.getpid()}.jsonl"
    filler = "x" * payload_bytes
    with (
        Recorder(path, process=f"{config.name}.{os.getpid()}") as rec,
        Queue(config.url, settings=Settings(timeout=config.timeout)) as q,
    ):
        events.put((config.name, os.getpid(), "ready"))
        n = 0
        while not stop.is_set():
            op = rec.invoke("enqueue")
            rec.flush()  # write-ahead: an enqueue killed mid-flight still shows as unknown
            try:
                ids = q.enqueue_many(
                    config.queue, [{"n": n + i, "f": filler} for i in range(batch)]
                )
            except WorkclaimError as exc:
                rec.info(op, f"{type(exc).__name__}: {exc}")
            else:
                rec.ok_many(op, [{"item_id": i} for i in ids])
            rec.flush()
            n += batch
            time.sleep(ENQUEUE_PAUSE)  # a steady trickle: the workers must keep up with it


def kill_quietly(pid: int, sig: int) -> None:
    """Send `sig` to `pid`, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
