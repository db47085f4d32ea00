"""Flow control's cost and fairness, measured with the worker runtime (docs/flow-control.md).

Three measurements per backend, each pair in the same run so the ratios hold on a busy machine:
- `groups`: --processes worker processes of the runtime (--threads handler threads each, no-op
  handlers) drain --items items spread over --groups groups, once with no policy and once with
  `group_concurrency=1`: items/s and the p95 of the runtime's claim calls (`claim` and the fused
  `complete_and_claim`), and the ratios limited/plain (the issue asks >= 0.7 and <= 1.5x).
- `fairness`: group A holds --backlog queued items while group B gets one item every 50 ms; the
  p95 of B's pickup latency (enqueue to handler start) with A full, against A empty, and the
  FIFO figure beside it (the same backlog and trickle, all in the default group).
- `concurrency`: `concurrency=64` over --processes processes of --big-threads threads each:
  items/s, the most handlers seen running at once, and the history checker's verdict on the
  recorded leases (never more than 64 live leases on the store's clock).

    python -m benchmarks.flow_control                                 # every backend, full size
    python -m benchmarks.flow_control --backends sqlite --items 2000 --backlog 5000 \\
        --trickle-seconds 2 --big-items 2000                          # a smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import queue as queue_module
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.claim_throughput import _percentile, _redact, reset_workclaim

QUEUE = "bench-flow"
TRICKLE_EVERY = 0.05  # group B's enqueue interval (the 50 ms)
POLL = 0.02  # how often the coordinator looks at the queue's counts
URLS = {
    "sqlite": f"sqlite:///{Path(tempfile.gettempdir()) / 'workclaim-bench-flow.db'}",
    "postgres": "postgresql://postgres@127.0.0.1:5432/test?schema=workclaim_bench_flow",
    "redis": "redis://127.0.0.1:6379/15?prefix=workclaim_bench_flow",
}


# -- the worker processes ------------------------------------------------------------------------
class Timed:
    """The worker's source: a Queue whose claim calls are timed and, with a recorder, recorded
    (one `claim` op per call, its grants with their groups and store-clock expiries)."""

    def __init__(self, queue: Any, recorder: Any = None) -> None:
        self._queue = queue
        self._rec = recorder
        self.latencies: list[float] = []

    def _timed(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        from workclaim.bench.history import grant_fields

        op = self._rec.invoke("claim", worker="bench") if self._rec is not None else None
        start = time.perf_counter()
        result = call(*args, **kwargs)
        self.latencies.append(time.perf_counter() - start)
        if op is not None:
            leases = result[1] if isinstance(result, tuple) else result
            self._rec.ok_many(op, [grant_fields(lease) for lease in leases])
        return result

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._queue.claim, *args, **kwargs)

    def complete_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._queue.complete_and_claim, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def _runtime_worker(
    url: str,
    threads: int,
    history: str | None,
    running: Any,
    peak: Any,
    stop: Any,
    barrier: Any,
    out: Any,
    job_seconds: float = 0.0,
) -> None:
    """One process of the runtime: handlers that do nothing (or sleep `job_seconds`); B items
    report their pickup latency; with `running`/`peak` (shared counters) the handlers count how
    many run at once."""
    logging.getLogger("workclaim").setLevel(logging.ERROR)
    try:
        from workclaim import Queue
        from workclaim.bench.history import Recorder
        from workclaim.worker import Context, Worker

        rec = None if history is None else Recorder(history, process=f"p{os.getpid()}")
        pickups: list[float] = []
        with Queue(url) as q:
            source = Timed(q, rec)
            worker = Worker(source, queues=QUEUE, concurrency=threads, wait=1.0)

            @worker.handler
            def handle(ctx: Context) -> None:
                payload = ctx.lease.payload
                if isinstance(payload, dict) and "t" in payload:
                    pickups.append(time.time() - float(payload["t"]))
                if running is not None:
                    with running.get_lock():
                        running.value += 1
                        peak.value = max(peak.value, running.value)
                    time.sleep(job_seconds)  # long enough for the limit, not the threads, to bind
                    with running.get_lock():
                        running.value -= 1

            threading.Thread(target=lambda: (stop.wait(), worker.stop()), daemon=True).start()
            barrier.wait(300)
            worker.run(install_signals=False)
        if rec is not None:
            rec.close()
        out.put(("ok", (source.latencies, pickups)))
    except Exception as exc:  # reported to the coordinator, which fails the run
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def run_runtime(
    url: str,
    processes: int,
    threads: int,
    total: int,
    *,
    trickle: float = 0.0,
    trickle_group: str | None = None,
    history_dir: Path | None = None,
    counters: bool = False,
    job_seconds: float = 0.0,
) -> dict[str, Any]:
    """Start the runtime's processes, release them together, and wait until `total` items (the
    prefill plus the trickle's) are done; returns items/s and the claim and pickup figures."""
    from workclaim import Queue

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    stop = ctx.Event()
    out = ctx.Queue()
    running = ctx.Value("i", 0) if counters else None
    peak = ctx.Value("i", 0) if counters else None
    procs = [
        ctx.Process(
            target=_runtime_worker,
            args=(
                url,
                threads,
                None if history_dir is None else str(history_dir / f"w{i}.jsonl"),
                running,
                peak,
                stop,
                barrier,
                out,
                job_seconds,
            ),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    trickled = 0
    with Queue(url) as q:
        barrier.wait(300)
        start = time.monotonic()
        next_at = start
        while True:
            now = time.monotonic()
            if trickle and now - start < trickle and now >= next_at:
                q.enqueue(QUEUE, {"t": time.time()}, group=trickle_group)
                trickled += 1
                next_at += TRICKLE_EVERY
            done = q.stats(QUEUE).done
            if done >= total + trickled and (not trickle or now - start >= trickle):
                break
            time.sleep(POLL)  # the coordinator watching the counts: nothing to wait on
        seconds = time.monotonic() - start
    stop.set()
    reports: list[Any] = []
    while len(reports) < processes:
        try:
            reports.append(out.get(timeout=60))
        except queue_module.Empty:
            reports.append(("error", "a worker process did not report"))
    for p in procs:
        p.join(30)
    failures = [detail for status, detail in reports if status != "ok"]
    if failures:
        raise RuntimeError(f"{len(failures)} worker process(es) failed: {failures[0]}")
    latencies = [x for _, (lat, _) in reports for x in lat]
    pickups = [x for _, (_, got) in reports for x in got]
    return {
        "items": total + trickled,
        "seconds": round(seconds, 3),
        "items_per_s": round((total + trickled) / seconds, 1),
        "claim_p95_ms": round(_percentile(latencies, 0.95) * 1000, 3),
        "pickup_p95_ms": round(_percentile(pickups, 0.95) * 1000, 3) if pickups else None,
        "pickups": len(pickups),
        "max_running": None if peak is None else int(peak.value),
    }


# -- the measurements ----------------------------------------------------------------------------
def fill(url: str, groups: dict[str | None, int], **policy: Any) -> int:
    """A fresh store with `groups` {group: items} queued and `policy` set; returns the total."""
    from workclaim import Queue

    reset_workclaim(url)
    total = 0
    with Queue(url) as q:
        if policy:
            q.set_policy(QUEUE, **policy)
        for group, n in groups.items():
            for first in range(0, n, 1000):
                q.enqueue_many(QUEUE, [{}] * min(1000, n - first), group=group)
            total += n
    return total


def measure_groups(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """1,000 groups, no limit against group_concurrency=1."""
    per = max(1, args.items // args.groups)
    spread = {f"g{i}": per for i in range(args.groups)}
    rows = {}
    for name, policy in (("plain", {}), ("limited", {"group_concurrency": 1})):
        total = fill(url, spread, **policy)
        rows[name] = run_runtime(url, args.processes, args.threads, total)
    plain, limited = rows["plain"], rows["limited"]
    return {
        **rows,
        "throughput_ratio": round(limited["items_per_s"] / plain["items_per_s"], 3),
        "claim_p95_ratio": round(limited["claim_p95_ms"] / plain["claim_p95_ms"], 3),
    }


def measure_fairness(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """B's pickup p95 with A empty, with A's backlog (groups), and FIFO (no groups)."""
    rows = {}
    for name, backlog, b_group in (
        ("a_empty", {}, "B"),
        ("a_full", {"A": args.backlog}, "B"),
        ("fifo", {None: args.backlog}, None),
    ):
        total = fill(url, backlog)
        rows[name] = run_runtime(
            url,
            args.processes,
            args.threads,
            total,
            trickle=args.trickle_seconds,
            trickle_group=b_group,
        )
    empty, full = rows["a_empty"]["pickup_p95_ms"], rows["a_full"]["pickup_p95_ms"]
    return {**rows, "pickup_ratio": round(full / empty, 3) if empty and full else None}


def measure_concurrency(url: str, args: argparse.Namespace, history: Path) -> dict[str, Any]:
    """concurrency=64 over processes x big threads; the recorded leases checked."""
    from workclaim import Queue
    from workclaim.bench.history import Recorder, check_files, lease_end_facts, load_history

    total = fill(url, {None: args.big_items}, concurrency=args.limit)
    history.mkdir(parents=True, exist_ok=True)
    with Recorder(history / "setup.jsonl", process="setup") as rec:
        op = rec.invoke("policy", queue=QUEUE, policy={"concurrency": args.limit})
        rec.ok(op)
    row = run_runtime(
        url,
        args.processes,
        args.big_threads,
        total,
        history_dir=history,
        counters=True,
        job_seconds=args.big_job_ms / 1000,
    )
    events = load_history(sorted(history.glob("*.jsonl")))
    items = {int(e["item_id"]) for e in events if e["kind"] == "claim" and "item_id" in e}
    with Queue(url) as q, Recorder(history / "store.jsonl", process="store") as rec:
        for item in sorted(items):
            for fact in lease_end_facts(item, q.history(item)):
                rec.fact("ended", **fact)
        final = {item: str(q.get(item).status) for item in items}
    result = check_files(sorted(history.glob("*.jsonl")), final_state=final)
    row["violations"] = sum(result.violations.values())
    row["concurrency_exceeded"] = result.violations["concurrency_exceeded"]
    row["limit"] = args.limit
    return row


# -- the report ----------------------------------------------------------------------------------
def table(results: dict[str, dict[str, Any]]) -> str:
    """The figures as a Markdown table, one row per backend."""
    lines = [
        "| backend | groups plain items/s | gc=1 items/s | ratio | claim p95 plain / gc=1 ms "
        "| ratio | B pickup p95 A empty / A full / FIFO ms | ratio | conc. 64: items/s, max "
        "running, violations |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        g, f, c = r.get("groups", {}), r.get("fairness", {}), r.get("concurrency", {})

        def at(d: dict[str, Any], *keys: str) -> Any:
            for key in keys:
                d = d.get(key, {}) if isinstance(d, dict) else {}
            return d if d != {} else "-"

        lines.append(
            f"| {backend} | {at(g, 'plain', 'items_per_s')} | {at(g, 'limited', 'items_per_s')} "
            f"| {at(g, 'throughput_ratio')} | {at(g, 'plain', 'claim_p95_ms')} / "
            f"{at(g, 'limited', 'claim_p95_ms')} | {at(g, 'claim_p95_ratio')} | "
            f"{at(f, 'a_empty', 'pickup_p95_ms')} / {at(f, 'a_full', 'pickup_p95_ms')} / "
            f"{at(f, 'fifo', 'pickup_p95_ms')} | {at(f, 'pickup_ratio')} | "
            f"{at(c, 'items_per_s')}, {at(c, 'max_running')}, {at(c, 'violations')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres,redis")
    parser.add_argument("--url", action="append", default=[], help="backend=URL (overrides)")
    parser.add_argument("--measure", default="groups,fairness,concurrency")
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8, help="handler threads per process")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--backlog", type=int, default=100_000, help="group A's queued items")
    parser.add_argument("--trickle-seconds", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=64, help="the global concurrency")
    parser.add_argument("--big-threads", type=int, default=32)
    parser.add_argument("--big-items", type=int, default=10_000)
    parser.add_argument(
        "--big-job-ms", type=float, default=20.0, help="each handler's sleep in the concurrency run"
    )
    parser.add_argument("--json", default="bench-results/flow_control.json")
    parser.add_argument("--markdown", default="bench-results/flow_control.md")
    args = parser.parse_args(argv)
    logging.getLogger("workclaim").setLevel(logging.ERROR)
    urls = dict(URLS)
    for spec in args.url:
        name, _, url = spec.partition("=")
        urls[name] = url
    measures = [m.strip() for m in args.measure.split(",") if m.strip()]
    results: dict[str, dict[str, Any]] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        url = urls[backend]
        row: dict[str, Any] = {"url": _redact(url)}
        with tempfile.TemporaryDirectory(prefix="workclaim-flow-") as tmp:
            if "groups" in measures:
                row["groups"] = measure_groups(url, args)
            if "fairness" in measures:
                row["fairness"] = measure_fairness(url, args)
            if "concurrency" in measures:
                row["concurrency"] = measure_concurrency(url, args, Path(tmp) / "history")
        reset_workclaim(url)
        results[backend] = row
        print(f"{backend}: {json.dumps(row)}", file=sys.stderr)
    text = table(results)
    print(text)
    print(f"load average (1 min): {os.getloadavg()[0]:.1f}")
    for path, content in ((args.json, json.dumps(results, indent=2)), (args.markdown, text)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content + "\n")
    bad = [b for b, r in results.items() if r.get("concurrency", {}).get("violations")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
