"""Claim+complete throughput and claim latency over HTTP versus the library, in the same run.

For each store and each client count, the same workload runs twice on a fresh store: through
`AsyncQueue` directly (one process, its own thread pool) and through `workclaim serve` (a
subprocess, the same thread pool size) driven by httpx.AsyncClient tasks. Every run checks its
history: no (id, token) claimed twice, every item completed exactly once.

    python benchmarks/http_throughput.py                  # SQLite, 10 and 100 clients
    python benchmarks/http_throughput.py --postgres URL   # also PostgreSQL (once it exists)

Targets: HTTP throughput >= 0.4 of direct; claim p95 over HTTP <= 5x direct at 10 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.http_process import serve_process

from workclaim import AsyncQueue, Queue

THREADS = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's live child processes (the
    server), read from /proc: a figure that machine load does not inflate."""
    total = 0.0
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


@dataclass
class Run:
    store: str
    path: str
    clients: int
    items: int
    seconds: float
    ops_per_s: float
    claim_p50_ms: float
    claim_p95_ms: float
    claim_p99_ms: float
    duplicates: int
    not_once: int
    cpu_ms_per_op: float = 0.0
    server_cpu_ms_per_op: float = 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def summarise(
    store: str, path: str, clients: int, ids: list[int], seconds: float,
    claims: list[tuple[int, int]], completions: list[int], latencies: list[float],
) -> Run:  # fmt: skip
    dup = sum(n - 1 for n in Counter(claims).values() if n > 1)
    once = Counter(completions)
    not_once = sum(1 for i in ids if once[i] != 1)
    return Run(
        store, path, clients, len(ids), round(seconds, 3), round(len(ids) / seconds, 1),
        round(percentile(latencies, 0.50), 3), round(percentile(latencies, 0.95), 3),
        round(percentile(latencies, 0.99), 3), dup, not_once,
    )  # fmt: skip


async def direct(url: str, store: str, clients: int, items: int) -> Run:
    with Queue(url) as q:
        ids = q.enqueue_many("bench", list(range(items)))
    claims: list[tuple[int, int]] = []
    done: list[int] = []
    latencies: list[float] = []
    async with AsyncQueue(url, max_threads=THREADS) as q:

        async def client(n: int) -> None:
            while True:
                t = time.perf_counter()
                leases = await q.claim("bench", worker=f"w{n}", lease_seconds=60)
                latencies.append(time.perf_counter() - t)
                if not leases:
                    return
                claims.append((leases[0].id, leases[0].token))
                await q.complete(leases[0])
                done.append(leases[0].id)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(n) for n in range(clients)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    run = summarise(store, "direct", clients, ids, seconds, claims, done, latencies)
    run.cpu_ms_per_op = round(cpu / len(ids) * 1000, 3)
    return run


async def over_http(base: str, url: str, store: str, clients: int, items: int) -> Run:
    with Queue(url) as q:
        ids = q.enqueue_many("bench", list(range(items)))
    claims: list[tuple[int, int]] = []
    done: list[int] = []
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients + 5, max_keepalive_connections=clients + 5)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as c:

        async def client(n: int) -> None:
            while True:
                t = time.perf_counter()
                r = await c.post("/worker/claim", json={"queue": "bench", "lease_seconds": 60})
                latencies.append(time.perf_counter() - t)
                if r.status_code == 204:
                    return
                lease = r.json()["leases"][0]
                claims.append((lease["id"], lease["token"]))
                ok = await c.post(
                    "/worker/complete", json={"id": lease["id"], "token": lease["token"]}
                )
                ok.raise_for_status()
                done.append(lease["id"])

        started, cpu, server_cpu = time.perf_counter(), time.process_time(), children_cpu()
        await asyncio.gather(*(client(n) for n in range(clients)))
        seconds = time.perf_counter() - started
        server_cpu = children_cpu() - server_cpu
        cpu = time.process_time() - cpu + server_cpu
    run = summarise(store, "http", clients, ids, seconds, claims, done, latencies)
    run.cpu_ms_per_op = round(cpu / len(ids) * 1000, 3)
    run.server_cpu_ms_per_op = round(server_cpu / len(ids) * 1000, 3)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--postgres", help="a PostgreSQL URL (needs the postgres backend)")
    parser.add_argument("--out", default="bench-results/http_throughput.json")
    args = parser.parse_args()
    runs: list[Run] = []
    tmp = Path(tempfile.mkdtemp(prefix="workclaim-http-bench-"))
    stores = [("sqlite", lambda tag: f"sqlite:///{tmp / tag}.db")]
    if args.postgres:
        stores.append(("postgres", lambda tag: args.postgres))
    for store, make_url in stores:
        for clients in args.clients:
            url = make_url(f"direct-{clients}")
            runs.append(asyncio.run(direct(url, store, clients, args.items)))
            url = make_url(f"http-{clients}")
            with serve_process(url, "--no-auth", "--threads", str(THREADS)) as base:
                runs.append(asyncio.run(over_http(base, url, store, clients, args.items)))
    print_table(runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in runs], indent=2))
    print(f"\nwrote {out}")


def print_table(runs: list[Run]) -> None:
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    head = "store   clients path    ops/s  claim p50  p95 ms  p99 ms  dup  not-once  ratio  p95x"
    print(head + "  cpu ms/op (server)")
    by_key: dict[tuple[str, int], dict[str, Run]] = {}
    for r in runs:
        by_key.setdefault((r.store, r.clients), {})[r.path] = r
    for (store, clients), pair in by_key.items():
        d = pair.get("direct")
        for path in ("direct", "http"):
            r = pair.get(path)
            if r is None:
                continue
            ratio = p95x = ""
            if path == "http" and d is not None:
                ratio = f"{r.ops_per_s / d.ops_per_s:.2f}"
                p95x = f"{r.claim_p95_ms / d.claim_p95_ms:.2f}"
            print(
                f"{store:7} {clients:7} {path:6} {r.ops_per_s:7.0f} {r.claim_p50_ms:9.2f} "
                f"{r.claim_p95_ms:7.2f} {r.claim_p99_ms:7.2f} {r.duplicates:4} "
                f"{r.not_once:9} {ratio:>6} {p95x:>5}  {r.cpu_ms_per_op:9.2f}"
                + (f" ({r.server_cpu_ms_per_op:.2f})" if path == "http" else "")
            )


if __name__ == "__main__":
    main()
