"""The HTTP path against the library, in the same run: single-item claim+complete by
concurrent clients, and the worker runtime (`workclaim worker --server` against `--db`).

For each store, on a fresh store per run:

- clients: the same claim+complete loop through `AsyncQueue` directly (one process, its own
  thread pool) and through `workclaim serve` (a subprocess, the same thread pool size) driven by
  workclaim's `AsyncClient` tasks; claim latency percentiles;
- runtime: `--workers` worker processes (each a `Worker` with `--concurrency` handler threads, so
  fused batches of up to that many) on a no-op handler, over the store directly and over the
  server; items/s from the first enqueue to the last completion, and the p95 of the workers'
  fused complete-and-claim calls.

Every run checks its history: no (id, token) claimed twice, every item completed exactly once.
CPU per item: the client side (this process, or the worker processes) and the server process.

    python benchmarks/http_throughput.py                  # SQLite
    python benchmarks/http_throughput.py --postgres URL   # and PostgreSQL

Targets (issue 17): runtime >= 0.5 of direct items/s with claim p95 <= 3x at 10 workers;
clients >= 0.4 of direct at 10 clients, >= 0.25 at 100.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.http_process import serve_process

from workclaim import AsyncQueue, Queue
from workclaim.client import AsyncClient, Client
from workclaim.models import Lease

THREADS = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")


def children_cpu(skip: set[int] | None = None) -> float:
    """CPU seconds (user + system) used so far by this process's live child processes (the
    server; not those in `skip`), read from /proc: a figure that machine load does not
    inflate."""
    total = 0.0
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and int(pid) not in (skip or set()):
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
    mode: str = "clients"  # or "runtime": worker processes


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
    # One client (one keep-alive connection) per task, as independent clients would be: one
    # httpx pool shared by 100 tasks spends more CPU finding a connection than on the request.
    pools = [AsyncClient(base, timeout=60, max_connections=1) for _ in range(clients)]
    try:

        async def client(n: int) -> None:
            c = pools[n]
            while True:
                t = time.perf_counter()
                leases = await c.claim("bench", lease_seconds=60)
                latencies.append(time.perf_counter() - t)
                if not leases:
                    return
                claims.append((leases[0].id, leases[0].token))
                await c.complete(leases[0])
                done.append(leases[0].id)

        started, cpu, server_cpu = time.perf_counter(), time.process_time(), children_cpu()
        await asyncio.gather(*(client(n) for n in range(clients)))
        seconds = time.perf_counter() - started
        server_cpu = children_cpu() - server_cpu
        cpu = time.process_time() - cpu + server_cpu
    finally:
        for pool in pools:
            await pool.close()
    run = summarise(store, "http", clients, ids, seconds, claims, done, latencies)
    run.cpu_ms_per_op = round(cpu / len(ids) * 1000, 3)
    run.server_cpu_ms_per_op = round(server_cpu / len(ids) * 1000, 3)
    return run


# -- the worker runtime ------------------------------------------------------------------------
class Timed:
    """A worker's source that records how long each fused complete-and-claim call takes."""

    def __init__(self, source: Queue | Client) -> None:
        self.source = source
        self.url = getattr(source, "url", "")
        self.took: list[float] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.source, name)

    def complete_and_claim(self, *args: object, **kwargs: object) -> tuple[list[Lease], ...]:
        t = time.perf_counter()
        try:
            return self.source.complete_and_claim(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            self.took.append(time.perf_counter() - t)


def worker_child(source_url: str, queue: str, out: str, concurrency: int) -> None:
    """One worker process: a `Worker` on a no-op handler until SIGTERM; writes its fused-call
    latencies, the (id, token) pairs it was handed and its CPU seconds to `out`."""
    from workclaim.worker import Worker

    http = source_url.startswith("http")
    source = Client(source_url, timeout=60) if http else Queue(source_url)
    timed = Timed(source)
    seen: list[tuple[int, int]] = []
    worker = Worker(timed, queues=queue, concurrency=concurrency, wait=1.0, lease_seconds=60)  # type: ignore[arg-type]

    @worker.handler
    def handle(ctx: object) -> None:
        lease = ctx.lease  # type: ignore[attr-defined]
        seen.append((lease.id, lease.token))

    cpu = time.process_time()
    Path(out + ".ready").touch()
    worker.run()
    cpu = time.process_time() - cpu
    Path(out).write_text(json.dumps({"took": timed.took, "seen": seen, "cpu": cpu}))
    source.close()


def runtime(source_url: str, url: str, store: str, workers: int, items: int, conc: int) -> Run:
    """`workers` worker processes drain `items` enqueued once all of them are polling."""
    tmp = Path(tempfile.mkdtemp(prefix="workclaim-http-runtime-"))
    outs = [str(tmp / f"w{n}.json") for n in range(workers)]
    me = str(Path(__file__).resolve())
    queue = f"rt-{os.getpid()}-{time.monotonic_ns()}"  # its own queue, on a shared database too
    child = [sys.executable, me, "--worker-child", source_url, queue]
    procs = [subprocess.Popen([*child, out, str(conc)]) for out in outs]
    pids = {p.pid for p in procs}
    try:
        while not all(Path(o + ".ready").exists() for o in outs):
            time.sleep(0.05)
        time.sleep(1.0)  # every worker in its long poll
        with Queue(url) as q:
            started, server_cpu = time.perf_counter(), children_cpu(skip=pids)
            ids = q.enqueue_many(queue, list(range(items)))
            while q.stats(queue).done < items:
                time.sleep(0.01)
            seconds = time.perf_counter() - started
            server_cpu = children_cpu(skip=pids) - server_cpu
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
    docs = [json.loads(Path(o).read_text()) for o in outs]
    took = [t for d in docs for t in d["took"]]
    seen = [tuple(x) for d in docs for x in d["seen"]]
    path = "http" if source_url.startswith("http") else "direct"
    run = summarise(
        store, path, workers, ids, seconds, seen, [x[0] for x in seen], took or [float("nan")]
    )  # fmt: skip
    run.mode = "runtime"
    run.server_cpu_ms_per_op = round(server_cpu / items * 1000, 3)
    run.cpu_ms_per_op = round(sum(d["cpu"] for d in docs) / items * 1000 + server_cpu, 3)
    return run


def main() -> None:
    if sys.argv[1:2] == ["--worker-child"]:
        url, queue, out, conc = sys.argv[2:6]
        worker_child(url, queue, out, int(conc))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--workers", type=int, nargs="*", default=[10], help="runtime processes")
    parser.add_argument("--concurrency", type=int, default=4, help="handler threads per worker")
    parser.add_argument("--postgres", help="a PostgreSQL URL (needs the postgres backend)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--out", default="bench-results/http_throughput.json")
    args = parser.parse_args()
    runs: list[Run] = []
    tmp = Path(tempfile.mkdtemp(prefix="workclaim-http-bench-"))
    stores = [] if args.no_sqlite else [("sqlite", lambda tag: f"sqlite:///{tmp / tag}.db")]
    if args.postgres:
        stores.append(("postgres", lambda tag: args.postgres))
    serve = ("--no-auth", "--threads", str(THREADS))
    for store, make_url in stores:
        for clients in args.clients:
            url = make_url(f"direct-{clients}")
            runs.append(asyncio.run(direct(url, store, clients, args.items)))
            url = make_url(f"http-{clients}")
            with serve_process(url, *serve) as base:
                runs.append(asyncio.run(over_http(base, url, store, clients, args.items)))
        for workers in args.workers:
            url = make_url(f"rt-direct-{workers}")
            runs.append(runtime(url, url, store, workers, args.items, args.concurrency))
            url = make_url(f"rt-http-{workers}")
            with serve_process(url, *serve) as base:
                runs.append(runtime(base, url, store, workers, args.items, args.concurrency))
    print_table(runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in runs], indent=2))
    print(f"\nwrote {out}")


def print_table(runs: list[Run]) -> None:
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    head = "store    mode    n path    ops/s  claim p50  p95 ms  p99 ms  dup  not-once  ratio  p95x"
    print(head + "  cpu ms/op (server)")
    by_key: dict[tuple[str, str, int], dict[str, Run]] = {}
    for r in runs:
        by_key.setdefault((r.store, r.mode, r.clients), {})[r.path] = r
    for (store, mode, clients), pair in by_key.items():
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
                f"{store:8} {mode:7} {clients:3} {path:6} {r.ops_per_s:7.0f} {r.claim_p50_ms:9.2f} "
                f"{r.claim_p95_ms:7.2f} {r.claim_p99_ms:7.2f} {r.duplicates:4} "
                f"{r.not_once:9} {ratio:>6} {p95x:>5}  {r.cpu_ms_per_op:9.2f}"
                + (f" ({r.server_cpu_ms_per_op:.2f})" if path == "http" else "")
            )


if __name__ == "__main__":
    main()
