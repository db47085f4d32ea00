"""The worker processes of the connection-budget test (tests/integration/
test_postgres_pgbouncer_budget.py), as a script:

    python -m tests.support.budget_worker URL QUEUE PROCESSES OUT_DIR

It imports workclaim once, then forks PROCESSES workers (real OS processes; forked before any
thread or connection exists here). Each opens its own Queue (its own pool), waits for the others
at a barrier, then claims and completes with the fused turn until nothing is claimable, and
writes the ids it completed (or its error) to OUT_DIR/w<i>.json. The script prints one JSON line
when all are connected (`ready`, and `connect_seconds` since the first fork) and one when all
have ended (`seconds` since the barrier, and the exit codes).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import workclaim.backends.postgres.backend  # noqa: F401  (imported once, before the forks)
from workclaim import Queue, Settings

BATCH = 5
LEASE_SECONDS = 120.0


def work(url: str, queue: str, barrier: Barrier, out: Path) -> None:
    """Run one worker; the outcome is `out` (JSON: `done` ids, or `error`)."""
    worker = f"budget-{os.getpid()}"
    done: list[int] = []
    try:
        with Queue(url, settings=Settings(timeout=30)) as q:
            barrier.wait(timeout=120)
            leases = q.claim(queue, worker=worker, lease_seconds=LEASE_SECONDS, limit=BATCH)
            while leases:
                finished = leases
                lost, leases = q.complete_and_claim(
                    finished, queue, worker=worker, lease_seconds=LEASE_SECONDS, limit=BATCH
                )
                if lost:
                    raise RuntimeError(f"completions refused as stale: {[x.id for x in lost]}")
                done.extend(lease.id for lease in finished)
        out.write_text(json.dumps({"done": done}))
    except Exception as exc:  # reported by the test, with the process it came from
        out.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}", "done": done}))
        raise


def main(url: str, queue: str, processes: int, out_dir: Path) -> None:
    """Fork the workers, report when they are all connected and when they have all ended."""
    forking = time.monotonic()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes + 1)
    procs = [
        ctx.Process(target=work, args=(url, queue, barrier, out_dir / f"w{i}.json"), daemon=True)
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=150)
    started = time.monotonic()
    connecting = round(started - forking, 2)
    print(json.dumps({"ready": processes, "connect_seconds": connecting}), flush=True)
    for proc in procs:
        proc.join(120)
    took = time.monotonic() - started
    print(json.dumps({"seconds": took, "exitcodes": [p.exitcode for p in procs]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
