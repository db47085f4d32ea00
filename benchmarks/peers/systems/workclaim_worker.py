"""workclaim's worker runtime (`workclaim.worker.Worker`) over a `Queue`: it claims in batches
up to its free capacity, runs the no-op handler on a thread per item and completes on return.
The runtime has no drain mode, so the benchmark hands it a thin proxy of the `Queue` that
times every claim and calls `worker.stop()` on the first empty claim (claims use `wait=0`)."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from systems.base import QUEUE, Recorder
from systems.workclaim_queue import WorkclaimQueue

CONCURRENCY = 16


class _Draining:
    """The Queue as the runtime's source: claims timed, the worker stopped once one is empty."""

    def __init__(self, queue: Any, rec: Recorder) -> None:
        self.queue = queue
        self.rec = rec
        self.worker: Any = None

    def claim(self, queues: str | Sequence[str], **options: Any) -> list[Any]:
        options["wait"] = 0
        t0 = time.perf_counter_ns()
        leases: list[Any] = self.queue.claim(queues, **options)
        if leases:
            self.rec.claims_ns.append(time.perf_counter_ns() - t0)
        elif self.worker is not None:
            self.worker.stop()
        return leases

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)


class WorkclaimWorker(WorkclaimQueue):
    def __init__(self, backend: str) -> None:
        super().__init__(backend, CONCURRENCY)
        self.claim_note = f"Queue.claim(max=free capacity <= {CONCURRENCY}) made by the runtime"
        self.config_note = (
            f"workclaim.worker.Worker(concurrency={CONCURRENCY}, lease=60) over a Queue, "
            "no-op handler; stopped on its first empty claim"
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

        with Queue(ctx["url"]) as q:
            q.stats(QUEUE)  # connect before the clock starts
            source = _Draining(q, rec)
            worker = Worker(
                source,
                queues=[QUEUE],
                concurrency=CONCURRENCY,
                lease=60,
                wait=0,
                grace=60,
                name=f"peers-{os.getpid()}",
            )
            source.worker = worker

            @worker.handler
            def record(wctx: Any) -> None:
                rec.item(wctx.lease.payload)

            start()
            worker.run(install_signals=False)


def make(backend: str) -> WorkclaimWorker:
    return WorkclaimWorker(backend)
