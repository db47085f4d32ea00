"""What the `workclaim.events` hooks cost: nothing measurable while the logger is off.

Three figures, each the median of --reps runs:
- the guard alone (`EVENTS.isEnabledFor(DEBUG)` with the logger at WARNING), in ns per call;
- CPU time of enqueue + claim + complete of one item at a time on in-memory SQLite (the
  fastest store, so the largest relative overhead) with the logger off, against the same loop
  through `Queue` as it was before the hooks (`git show BASE:src/workclaim/queue.py`, loaded
  as a module);
- the same loop with the logger on at DEBUG, formatting JSON lines into memory (the cost of
  turning the records on).
Runs are interleaved (baseline, off, on, baseline, ...) so load drifts hit all three. Prints
figures and writes JSON. Not a test: figures, not assertions.

    .venv/bin/python benchmarks/log_overhead.py --items 3000 --reps 7
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any

from workclaim import logs
from workclaim.queue import Queue

ROOT = Path(__file__).resolve().parent.parent


def baseline_module(ref: str) -> ModuleType:
    """`workclaim.queue` as it was at `ref` (before the logging hooks)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:src/workclaim/queue.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader("workclaim._queue_baseline", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{ref}:queue.py", "exec"), module.__dict__)
    return module


def per_item_us(queue_class: Any, items: int) -> float:
    """CPU microseconds per item for enqueue + claim + complete, one item at a time (CPU time of
    this process: in-memory SQLite is all in-process work, and CPU time is less disturbed by
    other processes on a loaded machine than wall time)."""
    with queue_class("sqlite:///:memory:") as q:
        for i in range(50):  # warm the statement cache
            q.enqueue("warm", i)
            q.complete(q.claim("warm", worker="w")[0])
        start = time.process_time()
        for i in range(items):
            q.enqueue("bench", i)
            [lease] = q.claim("bench", worker="w")
            q.complete(lease)
        return (time.process_time() - start) / items * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--base", default="3f28933", help="commit with the hook-free queue.py")
    parser.add_argument("--out", default="bench-results/log_overhead.json")
    args = parser.parse_args()

    events = logs.EVENTS
    events.setLevel(logging.WARNING)
    guard = timeit.Timer(lambda: events.isEnabledFor(logs.HOT))
    empty = timeit.Timer(lambda: None)
    n = 1_000_000
    guard_ns = statistics.median(
        (guard.timeit(n) - empty.timeit(n)) / n * 1e9 for _ in range(args.reps)
    )

    base_queue = baseline_module(args.base).Queue
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logs.JsonFormatter())
    runs: dict[str, list[float]] = {"baseline": [], "off": [], "on": []}
    for _ in range(args.reps):
        runs["baseline"].append(per_item_us(base_queue, args.items))
        events.setLevel(logging.WARNING)
        runs["off"].append(per_item_us(Queue, args.items))
        events.addHandler(handler)
        events.setLevel(logging.DEBUG)
        runs["on"].append(per_item_us(Queue, args.items))
        events.removeHandler(handler)
        events.setLevel(logging.WARNING)
        sink.seek(0)
        sink.truncate()
    med = {name: statistics.median(values) for name, values in runs.items()}
    load = os.getloadavg()
    result = {
        "load_average": load,
        "items": args.items,
        "reps": args.reps,
        "guard_ns": guard_ns,
        "guards_per_item": 3,
        "per_item_us": med,
        "runs_us": runs,
        "off_vs_baseline": med["off"] / med["baseline"],
        "on_vs_baseline": med["on"] / med["baseline"],
        "python": sys.version.split()[0],
    }
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; medians of {args.reps} runs")
    print(f"guard isEnabledFor (logger off): {guard_ns:.0f} ns per call, 3 per item")
    for name, label in (
        ("baseline", "no hooks (base)"),
        ("off", "hooks, logger off"),
        ("on", "hooks, DEBUG -> JSON"),
    ):
        spread = f"{min(runs[name]):.1f}-{max(runs[name]):.1f}"
        ratio = med[name] / med["baseline"]
        print(f"{label:22} {med[name]:7.1f} us/item (runs {spread})  x{ratio:.3f}")
    share = 3 * guard_ns / 1000 / med["baseline"] * 100
    print(f"guards as a share of an item: {share:.3f} %")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
