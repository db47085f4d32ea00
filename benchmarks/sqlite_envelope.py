"""The SQLite envelope: claim+complete with N processes, per `synchronous` mode.

Each worker process has its own Queue, all start from a barrier, claim one item at a time and
complete it until the queue is empty. Prints claim-call p50/p95/p99 and items/s per mode and
process count (medians over --reps), writes JSON. Not a test: figures, not assertions.

    .venv/bin/python benchmarks/sqlite_envelope.py --workers 1,2,8,32 --items 2000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from workclaim import Queue


def _worker(url: str, barrier: Any, out: Any) -> None:
    latencies: list[int] = []
    ids: list[int] = []
    with Queue(url) as q:
        barrier.wait()
        while True:
            t0 = time.perf_counter_ns()
            leases = q.claim("bench", worker="w", lease_seconds=60)
            latencies.append(time.perf_counter_ns() - t0)
            if not leases:
                break
            for lease in leases:
                q.complete(lease)
                ids.append(lease.id)
    out.put((latencies, ids))


def pct(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1e6


def run_once(mode: str, workers: int, items: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}?synchronous={mode}"
        with Queue(url) as q:
            q.enqueue_many("bench", [{"n": i} for i in range(items)])
        barrier, out = ctx.Barrier(workers + 1), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(url, barrier, out)) for _ in range(workers)]
        for p in procs:
            p.start()
        barrier.wait()
        start = time.perf_counter()
        results = [out.get() for _ in procs]
        elapsed = time.perf_counter() - start
        for p in procs:
            p.join()
    latencies = [lat for lats, _ in results for lat in lats]
    ids = [i for _, got in results for i in got]
    return {
        "mode": mode,
        "workers": workers,
        "items": items,
        "items_per_s": items / elapsed,
        "p50_ms": pct(latencies, 50),
        "p95_ms": pct(latencies, 95),
        "p99_ms": pct(latencies, 99),
        "duplicates": len(ids) - len(set(ids)),
        "missing": items - len(set(ids)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", default="1,2,8,32")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--modes", default="full,normal")
    parser.add_argument("--out", default="bench-results/sqlite_envelope.json")
    args = parser.parse_args()
    rows = []
    print(f"{'mode':7} {'procs':>5} {'items/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} dup")
    for mode in args.modes.split(","):
        for workers in [int(w) for w in args.workers.split(",")]:
            reps = [run_once(mode, workers, args.items) for _ in range(args.reps)]
            row = {k: reps[0][k] for k in ("mode", "workers", "items")}
            for key in ("items_per_s", "p50_ms", "p95_ms", "p99_ms"):
                row[key] = statistics.median(r[key] for r in reps)
            row["duplicates"] = sum(r["duplicates"] for r in reps)
            row["missing"] = sum(r["missing"] for r in reps)
            rows.append(row)
            print(
                f"{mode:7} {workers:5d} {row['items_per_s']:9.0f} {row['p50_ms']:8.2f} "
                f"{row['p95_ms']:8.2f} {row['p99_ms']:8.2f} {row['duplicates']}",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"reps": args.reps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
