"""The fused turn on PostgreSQL: `Queue.complete_and_claim` against the raw single-claim baseline.

Per rep, interleaved: N items, W spawn processes released by a barrier; a "fused" worker loops
`lost, leases = q.complete_and_claim(leases, "bench", max=B)` (one round trip per turn: the
previous turn's items completed, the next ones claimed) until nothing is left; a "raw" worker runs
the raw baseline's claim of 1 and its completion (benchmarks/raw/postgres.py). Every id is
recorded: zero duplicates and zero missing items are checked. Items/s are medians of the reps,
the ratio is fused / raw of the same rep.

    python -m benchmarks.fused_postgres --url 'postgresql://postgres@127.0.0.1:5432/test?schema=wc_fused'
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import claim_throughput as ct
from benchmarks.raw import postgres as raw

from workclaim import Queue
from workclaim.config import Settings


def _worker(kind: str, url: str, batch: int, barrier: Any, out: Any) -> None:
    """One process: drain the queue, report (start, end, ids)."""
    got: list[int] = []
    try:
        if kind == "fused":
            q = Queue(url)
            name = f"w{mp.current_process().pid}"
            barrier.wait(120)
            start = time.perf_counter()
            leases: list[Any] = []
            while True:
                lost, leases = q.complete_and_claim(leases, ct.QUEUE, worker=name, max=batch)
                assert not lost
                if not leases:
                    break
                got.extend(lease.id for lease in leases)
            end = time.perf_counter()
            q.close()
        else:
            w = raw.open_worker(url)
            barrier.wait(120)
            start = time.perf_counter()
            while True:
                claimed = w.claim(1)
                if not claimed:
                    break
                for item_id, token in claimed:
                    w.complete(item_id, token)
                    got.append(item_id)
            end = time.perf_counter()
            w.close()
        out.put(("ok", (start, end, got)))
    except BaseException as exc:  # reported, so the driver never waits for a dead worker
        out.put(("error", repr(exc)))


def run(kind: str, url: str, workers: int, batch: int, items: int, history: bool) -> float:
    """Items/s of one run, after checking every item was taken exactly once."""
    if kind == "fused":
        ct.reset_workclaim(url)
        with Queue(url, settings=Settings(history=history)) as q:
            for start in range(0, items, 1000):
                q.enqueue_many(ct.QUEUE, [{}] * min(1000, items - start))
    else:
        raw.prefill(url, items)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(kind, url, batch, barrier, out)) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    reports = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    bad = [detail for status, detail in reports if status != "ok"]
    if bad:
        raise RuntimeError(f"{kind} worker failed: {bad[0]}")
    ids = [i for _, (_, _, got) in reports for i in got]
    if len(ids) != items or len(set(ids)) != items:
        raise RuntimeError(f"{kind}: {len(ids)} claims, {len(set(ids))} distinct, {items} items")
    seconds = max(r[1] for _, r in reports) - min(r[0] for _, r in reports)
    return float(items / seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--workers", default="1,10")
    parser.add_argument("--batches", default="1", help="fused claim sizes, comma-separated")
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--history", choices=("on", "off"), default="on")
    args = parser.parse_args(argv)
    history = args.history == "on"
    for workers in (int(w) for w in args.workers.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            fused, base, ratios = [], [], []
            for rep in range(1, args.reps + 1):
                f = run("fused", args.url, workers, batch, args.items, history)
                r = run("raw", args.url, workers, 1, args.items, history)
                fused.append(f)
                base.append(r)
                ratios.append(f / r)
                print(f"W={workers} B={batch} rep {rep}: fused {f:7.0f}  raw {r:7.0f} items/s")
            print(
                f"W={workers} B={batch} history={args.history}: fused "
                f"{statistics.median(fused):.0f} items/s, raw single claim "
                f"{statistics.median(base):.0f} items/s, ratio {statistics.median(ratios):.2f}",
                flush=True,
            )
    ct.reset_workclaim(args.url)
    raw.drop(args.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
