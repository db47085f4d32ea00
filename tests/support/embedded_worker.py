"""A program with its own SIGTERM handling that runs a `Worker` in one of its threads, as
docs/worker.md shows: `python -m tests.support.embedded_worker DB_URL`. It prints `ready` (and
the SIGTERM handler in force) once items finish and the slow one runs; then, on SIGTERM, its
own handler prints `program: SIGTERM`, asks the worker to stop and lets the thread return; the
last line is a JSON summary of the worker's counters and what the completion hook saw."""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType

from workclaim import Queue
from workclaim.models import Lease
from workclaim.worker import Context, Outcome, Worker


def main(url: str) -> None:
    finished: list[tuple[int, str]] = []
    lock = threading.Lock()
    some_done = threading.Event()
    stopping = threading.Event()
    slow_started = threading.Event()

    def on_finished(lease: Lease, outcome: Outcome) -> None:  # runs on the worker's threads
        with lock:
            finished.append((lease.id, outcome.value))
            if len(finished) >= 3:
                some_done.set()

    with Queue(url) as q:
        worker = Worker(q, queues="jobs", concurrency=2, grace=1, on_finished=on_finished)

        @worker.handler
        def handle(ctx: Context) -> int:
            if ctx.lease.payload == "slow":
                slow_started.set()
                ctx.stopping.wait(60)  # in flight at SIGTERM: released at the end of the grace
            return int(ctx.lease.id)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            print("program: SIGTERM", flush=True)
            stopping.set()
            worker.stop()  # thread-safe; run() returns once the worker has shut down

        signal.signal(signal.SIGTERM, on_sigterm)
        thread = threading.Thread(target=worker.run, name="embedded-worker")
        thread.start()
        some_done.wait(60)
        slow_started.wait(60)
        handler = signal.getsignal(signal.SIGTERM)
        print(f"ready {getattr(handler, '__name__', handler)}", flush=True)
        stopping.wait(60)
        thread.join(60)
        with lock:
            print(
                json.dumps(
                    {
                        "alive": thread.is_alive(),
                        "completed": worker.completed,
                        "released": worker.released,
                        "finished": finished,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1])
