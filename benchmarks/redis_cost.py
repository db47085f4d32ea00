"""What one claim+complete costs on Redis, workclaim against the raw Lua baseline, same run.

Throughput on a shared 2-core machine swings with everyone else's load; CPU time moves less.
For each rep this fills N no-op items, claims and completes them one at a time in this process,
and records per item: wall time, this process's CPU time (the client: redis-py, workclaim's
validation and objects), the server's script time (`INFO commandstats`, EVALSHA usec) and the
Redis calls the scripts made. Kinds: `workclaim` (claim then complete, attempt history on, the
default), `nohist` (the same with `Settings(history=False)`), `fused` and `fused-nohist` (one
`complete_and_claim` per item: the previous lease completed and the next claimed in one
script) and `raw` (benchmarks/raw/redis.py). Reps of the kinds are interleaved; medians are
reported with ratios (raw / kind, so higher is better, 1.0 is parity), and the
figures are written as JSON.

    python -m benchmarks.redis_cost                      # a throwaway redis-server
    python -m benchmarks.redis_cost --url redis://127.0.0.1:6379/15 --items 2000 --reps 7

With --url the keys go under `wc:cost` (and `wc:cost_raw`) and are deleted afterwards; the
server's command statistics are reset (CONFIG RESETSTAT), so use a server of your own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.raw import redis as raw

from workclaim import Queue, Settings

QUEUE = "bench"
KINDS = ("workclaim", "nohist", "fused", "fused-nohist", "raw")
_NOT_IN_SCRIPTS = frozenset(
    {"cmdstat_evalsha", "cmdstat_eval", "cmdstat_info", "cmdstat_config|resetstat"}
)


def _delete(client: redis.Redis, pattern: str) -> None:
    batch: list[Any] = []
    for name in client.scan_iter(match=pattern, count=1_000):
        batch.append(name)
        if len(batch) >= 500:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def _measure(
    admin: redis.Redis, n: int, fill: Callable[[], None], one: Callable[[], bool]
) -> dict[str, float]:
    """Per-item wall, client CPU and server script microseconds for claim+complete until empty."""
    fill()
    admin.config_resetstat()
    wall, cpu = time.perf_counter(), time.process_time()
    while one():
        pass
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = admin.info("commandstats")
    server = float(stats.get("cmdstat_evalsha", {}).get("usec", 0))
    scripts = float(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    calls = sum(s["calls"] for name, s in stats.items() if name not in _NOT_IN_SCRIPTS)
    return {
        "wall_us": wall / n * 1e6,
        "client_cpu_us": cpu / n * 1e6,
        "server_us": server / n,
        "scripts": scripts / n,
        "redis_calls": calls / n,
    }


def run(url: str, items: int, reps: int) -> dict[str, Any]:
    """Interleaved reps of workclaim and raw on `url`; returns the JSON-ready results."""
    base = url.split("?")[0]
    admin = redis.Redis.from_url(base)
    wc_url = f"{base}?prefix=wc:cost"
    results: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    q = Queue(wc_url)
    quiet = Queue(wc_url, settings=Settings(history=False))
    worker = raw.open_worker(wc_url)

    def wc_one(queue: Queue) -> Callable[[], bool]:
        def one() -> bool:
            leases = queue.claim(QUEUE, worker="w1", lease_seconds=300)
            for lease in leases:
                queue.complete(lease)
            return bool(leases)

        return one

    def fused_one(queue: Queue) -> Callable[[], bool]:
        held: list[Any] = []

        def one() -> bool:
            _, leases = queue.complete_and_claim(held, QUEUE, worker="w1", lease_seconds=300)
            held[:] = leases
            return bool(leases)

        return one

    def raw_one() -> bool:
        pairs = worker.claim(1)
        for item_id, token in pairs:
            worker.complete(item_id, token)
        return bool(pairs)

    try:
        runs: dict[str, tuple[Callable[[], None], Callable[[], bool]]] = {
            "workclaim": (lambda: q.enqueue_many(QUEUE, [{}] * items), wc_one(q)),
            "nohist": (lambda: quiet.enqueue_many(QUEUE, [{}] * items), wc_one(quiet)),
            "fused": (lambda: q.enqueue_many(QUEUE, [{}] * items), fused_one(q)),
            "fused-nohist": (lambda: quiet.enqueue_many(QUEUE, [{}] * items), fused_one(quiet)),
            "raw": (lambda: raw.prefill(wc_url, items), raw_one),
        }
        for rep in range(reps):
            for kind, (fill, one) in runs.items():
                results[kind].append(_measure(admin, items, fill, one))
            print(
                f"  rep {rep + 1}: "
                + ", ".join(f"{k} {results[k][-1]['wall_us']:.0f}" for k in KINDS)
                + " us/item",
                file=sys.stderr,
            )
    finally:
        q.close()
        quiet.close()
        worker.close()
        _delete(admin, "wc:cost:*")
        _delete(admin, "wc:cost_raw:*")
        admin.close()
    summary = {
        kind: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for kind, runs in results.items()
    }
    ratios = {
        kind: {k: summary["raw"][k] / summary[kind][k] for k in summary["raw"] if summary[kind][k]}
        for kind in KINDS
        if kind != "raw"
    }
    return {
        "items": items,
        "reps": reps,
        "summary": summary,
        "raw_over_workclaim": ratios,
        "runs": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Redis of your own (default: a throwaway redis-server)")
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", default="bench-results/redis_cost.json")
    args = parser.parse_args(argv)
    if args.url:
        out = run(args.url, args.items, args.reps)
    else:
        from tests.support.redisserver import RedisServer

        with RedisServer() as server:
            out = run(server.url, args.items, args.reps)
    s, r = out["summary"], out["raw_over_workclaim"]
    print(f"{'per item (median)':<18}" + "".join(f"{k:>13}" for k in KINDS))
    for k in ("wall_us", "client_cpu_us", "server_us", "scripts", "redis_calls"):
        print(f"{k:<18}" + "".join(f"{s[kind][k]:>13.1f}" for kind in KINDS))
    for k in ("wall_us", "client_cpu_us", "server_us"):
        print(f"{'raw/kind ' + k:<18}" + "".join(f"{r[kind][k]:>13.2f}" for kind in KINDS[:-1]))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
