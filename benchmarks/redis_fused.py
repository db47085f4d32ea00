"""Redis: the fused path (`complete_and_claim`, one script per turn) against the raw single-claim
baseline and workclaim's own claim-then-complete, same run, W worker processes.

Each rep fills N no-op items, releases W spawn processes together (a barrier), and each drains
the queue: `fused` completes the leases it holds and claims the next `batch` in one call until
nothing is left; `plain` claims one and completes it (two scripts); `raw` is
benchmarks/raw/redis.py (bare Lua claim of one item and fenced completion). Kinds are
interleaved per rep; every run is checked for duplicate and missing ids. Medians of items/s and
ratios to raw in the same run; JSON written. `--history off` enqueues with
`Settings(history=False)` (no attempt-history writes).

    python -m benchmarks.redis_fused --url 'redis://127.0.0.1:6379/15?prefix=wc:fused' \
        --workers 1,10 --items 5000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.raw import redis as raw

QUEUE = "bench"
KINDS = ("fused", "plain", "raw")


def _delete_prefix(url: str) -> None:
    """UNLINK every key under the URL's prefix (workclaim's and the raw baseline's)."""
    base, _, query = url.partition("?")
    prefix = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("prefix", "workclaim")
    client = redis.Redis.from_url(base)
    try:
        for pattern in (f"{prefix}:*", f"{prefix}_raw:*"):
            names = list(client.scan_iter(match=pattern, count=1_000))
            for start in range(0, len(names), 500):
                client.unlink(*names[start : start + 500])
    finally:
        client.close()


def _fill(kind: str, url: str, items: int, history: bool) -> None:
    if kind == "raw":
        raw.prefill(url, items)
        return
    from workclaim import Queue, Settings

    with Queue(url, settings=Settings(history=history)) as q:
        for start in range(0, items, 1_000):
            q.enqueue_many(QUEUE, [{}] * min(1_000, items - start))


def _worker(kind: str, url: str, batch: int, barrier: Any, out: Any) -> None:
    """Drain the queue after the barrier; report (start, end, ids, lost)."""
    ids: list[int] = []
    lost = 0
    try:
        if kind == "raw":
            w = raw.open_worker(url)
            barrier.wait(120)
            start = time.perf_counter()
            while pairs := w.claim(1):
                for item_id, token in pairs:
                    ids.append(item_id)
                    w.complete(item_id, token)
            end = time.perf_counter()
            w.close()
        else:
            from workclaim import Queue

            with Queue(url) as q:
                name = f"w{os.getpid()}"
                barrier.wait(120)
                start = time.perf_counter()
                if kind == "fused":
                    held: list[Any] = []
                    while True:
                        gone, held = q.complete_and_claim(
                            held, QUEUE, worker=name, lease=300, max=batch
                        )
                        lost += len(gone)
                        if not held:
                            break
                        ids.extend(lease.id for lease in held)
                else:
                    while leases := q.claim(QUEUE, worker=name, lease=300):
                        for lease in leases:
                            ids.append(lease.id)
                            q.complete(lease)
                end = time.perf_counter()
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    out.put(("ok", (start, end, ids, lost)))


def run_once(
    kind: str, url: str, workers: int, batch: int, items: int, history: bool
) -> dict[str, Any]:
    _fill(kind, url, items, history)
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
    starts = [r[1][0] for r in reports]
    ends = [r[1][1] for r in reports]
    ids = [i for r in reports for i in r[1][2]]
    seconds = max(ends) - min(starts)
    return {
        "kind": kind,
        "workers": workers,
        "batch": batch if kind == "fused" else 1,
        "items_per_s": len(ids) / seconds,
        "duplicates": len(ids) - len(set(ids)),
        "missing": items - len(set(ids)),
        "lost": sum(r[1][3] for r in reports),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15?prefix=wc:fused")
    parser.add_argument("--workers", default="1,10")
    parser.add_argument("--batch", type=int, default=1, help="max per complete_and_claim")
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--history", choices=("on", "off"), default="on")
    parser.add_argument("--json", default="bench-results/redis_fused.json")
    args = parser.parse_args(argv)
    history = args.history == "on"
    runs: list[dict[str, Any]] = []
    try:
        for w in (int(x) for x in args.workers.split(",")):
            for rep in range(args.reps):
                for kind in KINDS:
                    _delete_prefix(args.url)
                    r = run_once(kind, args.url, w, args.batch, args.items, history)
                    runs.append(r)
                    print(
                        f"  W={w} rep {rep + 1} {kind:<6} {r['items_per_s']:8.0f} items/s "
                        f"dup {r['duplicates']} miss {r['missing']} lost {r['lost']}",
                        file=sys.stderr,
                    )
    finally:
        _delete_prefix(args.url)
    rows = []
    for w in sorted({r["workers"] for r in runs}):
        med = {
            k: statistics.median(
                r["items_per_s"] for r in runs if r["workers"] == w and r["kind"] == k
            )
            for k in KINDS
        }
        rows.append({"workers": w, **med, **{f"{k}/raw": med[k] / med["raw"] for k in KINDS[:2]}})
    print(f"history {args.history}, batch {args.batch}, {args.items} items, {args.reps} reps")
    print(f"{'W':>3} {'fused':>9} {'plain':>9} {'raw':>9} {'fused/raw':>10} {'plain/raw':>10}")
    for row in rows:
        print(
            f"{row['workers']:>3} {row['fused']:>9.0f} {row['plain']:>9.0f} {row['raw']:>9.0f} "
            f"{row['fused/raw']:>10.2f} {row['plain/raw']:>10.2f}"
        )
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": vars(args), "summary": rows, "runs": runs}, indent=2))
    print(f"wrote {path}")
    bad = [r for r in runs if r["duplicates"] or r["missing"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
