"""workclaim's worker runtime (`workclaim.worker.Worker`) over a `Queue`: one claimer per
process reports the finished items and claims up to its free capacity in one round trip
(`Queue.complete_and_claim`, the fused path, batch adaptive), the no-op handler runs on the
runtime's handler threads. The runtime has no drain mode, so the benchmark hands it a thin proxy
of the `Queue` that times every claim and stops the worker on the first claim that finds the
queue empty (its finished items are still completed by the graceful stop)."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from systems.base import QUEUE, Recorder
from systems.workclaim_queue import WorkclaimQueue, _settings

if TYPE_CHECKING:  # workclaim is imported where it runs, in the measured process
    from workclaim.api import QueueAPI

# 32 handler threads and the runtime's default bound on a turn (max_batch = concurrency): in a
# same-run comparison of 32/16, 32/32 and 16/16 on PostgreSQL and SQLite, 32/32 drained fastest
# (docs/worker.md).
CONCURRENCY = 32
MAX_BATCH = 32


class _Draining:
    """The Queue as the runtime's source: claims timed, the worker stopped once one is empty."""

    def __init__(self, queue: QueueAPI, rec: Recorder) -> None:
        self.queue = queue
        self.rec = rec
        self.worker: Any = None

    def _timed(self, t0: int, leases: list[Any], wanted: int) -> None:
        if leases:
            self.rec.claims_ns.append(time.perf_counter_ns() - t0)
        elif wanted and self.worker is not None:
            self.worker.stop()

    def claim(self, queues: str | Sequence[str], **options: Any) -> list[Any]:
        options["wait"] = 0
        t0 = time.perf_counter_ns()
        leases: list[Any] = self.queue.claim(queues, **options)
        self._timed(t0, leases, options.get("limit", 1))
        return leases

    def complete_and_claim(
        self, done: Any, queues: str | Sequence[str], **options: Any
    ) -> tuple[list[Any], list[Any]]:
        t0 = time.perf_counter_ns()
        lost, leases = self.queue.complete_and_claim(done, queues, **options)
        self._timed(t0, leases, options.get("limit", 1))
        return lost, leases

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)


class WorkclaimWorker(WorkclaimQueue):
    def __init__(self, backend: str, history: bool = True, fused: bool = True) -> None:
        super().__init__(backend, MAX_BATCH, history)
        self.fused = fused
        if fused:
            self.claim_note = (
                f"Queue.complete_and_claim(finished, limit=free capacity <= {MAX_BATCH}) made by "
                "the runtime's claimer (the call also completes the finished items)"
            )
        else:
            self.claim_note = f"Queue.claim(limit=free capacity <= {MAX_BATCH}) by the runtime"
        self.config_note = (
            f"workclaim.worker.Worker(concurrency={CONCURRENCY}, max_batch={MAX_BATCH}, "
            "lease_seconds=60"
            + ("" if fused else ", fused=False")
            + f") over a Queue, no-op handler; {self.history_note()}; "
            + ("fused path (complete_and_claim, adaptive batch)" if fused else "claim + complete")
            + "; stopped on its first empty claim"
        )

    def unavailable(self) -> str | None:
        try:
            importlib.import_module("workclaim.worker")
        except ImportError as exc:
            return f"workclaim has no worker runtime here ({exc})"
        return super().unavailable()

    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None:
        from workclaim import Queue

        Worker = importlib.import_module("workclaim.worker").Worker

        with Queue(ctx["url"], settings=_settings(self.history)) as q:
            q.stats(QUEUE)  # connect before the clock starts
            source = _Draining(q, rec)
            worker = Worker(
                source,
                queues=[QUEUE],
                concurrency=CONCURRENCY,
                lease_seconds=60,
                wait=0,
                grace=60,
                name=f"peers-{os.getpid()}",
                fused=self.fused,
                max_batch=MAX_BATCH,
            )
            source.worker = worker

            @worker.handler
            def record(wctx: Any) -> None:
                rec.item(wctx.lease.payload)

            start()
            worker.run(install_signals=False)


def make(backend: str, history: bool = True, fused: bool = True) -> WorkclaimWorker:
    return WorkclaimWorker(backend, history, fused)
