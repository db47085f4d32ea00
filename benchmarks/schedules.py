"""What a scheduler costs: per fired slot, and to the claims running beside it.

Two measures per backend, each the median of --reps runs:

- **per slot.** --schedules schedules firing every second, driven by an injected clock: the
  scheduler's `tick()` is called once per simulated second for --slots seconds, so every pass
  fires one slot of every schedule, with no sleeping. Reported per fired slot: CPU microseconds
  of this process (for SQLite that includes the store's own work, which runs in-process; for
  PostgreSQL and Redis only the client's side), wall microseconds, and store calls (each one
  transaction or Lua script: the pass's read of every schedule, then one `fire_schedule` per
  slot; the store's clock is not read, the clock being injected). Run with `--schedules 1` for
  one schedule fired over --slots slots, and e.g. `--schedules 1000` for 1,000 schedules firing
  every second.
- **beside claims.** One thread enqueues nothing and claims + completes --items items one at a
  time; the same loop with a real `Scheduler` thread beside it (its own `Queue`, --beside
  schedules firing every second on the real clock). Items per second of each, interleaved runs,
  and their ratio.

Prints JSON (also written to --json) and a Markdown table. Figures, not assertions.

    .venv/bin/python benchmarks/schedules.py --backends sqlite,postgres,redis,mariadb
    .venv/bin/python benchmarks/schedules.py --backends sqlite --schedules 5 --slots 3 \\
        --items 50 --reps 1                                  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.claim_throughput import _redact, reset_workclaim

from workclaim.queue import Queue
from workclaim.scheduler import Scheduler

URLS = {
    "sqlite": f"sqlite:///{Path('/tmp') / 'workclaim-bench-schedules.db'}",
    "postgres": "postgresql://postgres@127.0.0.1:5432/test?schema=workclaim_bench_schedules",
    "redis": "redis://127.0.0.1:6379/15?prefix=workclaim_bench_schedules",
    # A database of the bench's own: reset_workclaim drops and creates it again.
    "mariadb": "mariadb://root@127.0.0.1:3306/workclaim_bench_schedules",
}
EVERY_SECOND = "* * * * * *"
COUNTED = ("schedules", "fire_schedule", "store_now", "get_schedule")


class Counting:
    """A backend whose schedule verbs (and clock) are counted: the store calls a scheduler
    makes."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name not in COUNTED:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return attr(*args, **kwargs)

        return counted


def per_slot(url: str, schedules: int, slots: int) -> dict[str, float]:
    """One run: `schedules` every-second schedules, `slots` passes of an injected clock."""
    reset_workclaim(url)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    with Queue(url) as setup:
        for n in range(schedules):
            setup.schedule(f"s{n}", "bench-sched", EVERY_SECOND, payload=n, now=start)
    queue = Queue(url)
    try:
        counting = Counting(queue.backend)
        queue.backend = counting  # type: ignore[assignment]
        clock = [start]
        scheduler = Scheduler(queue, clock=lambda: clock[0])
        cpu, wall = time.process_time(), time.perf_counter()
        for step in range(1, slots + 1):
            clock[0] = start + timedelta(seconds=step)
            scheduler.tick()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        fired = scheduler.enqueued
    finally:
        queue.close()
    if fired != schedules * slots:
        raise SystemExit(f"{_redact(url)}: fired {fired} slots, expected {schedules * slots}")
    return {
        "fired": fired,
        "cpu_us_per_slot": cpu / fired * 1e6,
        "wall_us_per_slot": wall / fired * 1e6,
        "store_calls_per_slot": counting.calls / fired,
    }


def claim_loop(url: str, items: int, beside: int) -> float:
    """Items per second of one thread claiming and completing `items` one at a time, with a
    scheduler thread (`beside` schedules every second) running beside it when `beside` > 0."""
    reset_workclaim(url)
    with Queue(url) as q:
        q.enqueue_many("bench-claim", list(range(items)))
        for n in range(beside):
            q.schedule(f"s{n}", "bench-sched", EVERY_SECOND, payload=n)
    other = Queue(url) if beside else None
    scheduler = Scheduler(other) if other is not None else None
    try:
        if scheduler is not None:
            scheduler.start()
        with Queue(url) as q:
            start = time.perf_counter()
            for _ in range(items):
                [lease] = q.claim("bench-claim", worker="bench")
                q.complete(lease)
            return items / (time.perf_counter() - start)
    finally:
        if scheduler is not None:
            scheduler.stop()
        if other is not None:
            other.close()


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    runs = [per_slot(url, args.schedules, args.slots) for _ in range(args.reps)]
    row: dict[str, Any] = {
        "url": _redact(url),
        "schedules": args.schedules,
        "slots": args.slots,
    }
    for key in ("cpu_us_per_slot", "wall_us_per_slot", "store_calls_per_slot"):
        row[key] = round(statistics.median(r[key] for r in runs), 1)
    plain: list[float] = []
    with_scheduler: list[float] = []
    for _ in range(args.reps):  # interleaved, so load drifts hit both
        plain.append(claim_loop(url, args.items, 0))
        with_scheduler.append(claim_loop(url, args.items, args.beside))
    row["claims_per_s"] = round(statistics.median(plain), 1)
    row["claims_per_s_with_scheduler"] = round(statistics.median(with_scheduler), 1)
    row["claim_ratio"] = round(row["claims_per_s_with_scheduler"] / row["claims_per_s"], 3)
    reset_workclaim(url)
    return row


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| backend | schedules x slots | CPU µs / slot | wall µs / slot | store calls / slot "
        "| claims/s | claims/s with a scheduler | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        lines.append(
            f"| {backend} | {r['schedules']} x {r['slots']} | {r['cpu_us_per_slot']} "
            f"| {r['wall_us_per_slot']} | {r['store_calls_per_slot']} | {r['claims_per_s']} "
            f"| {r['claims_per_s_with_scheduler']} | {r['claim_ratio']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres,redis")
    parser.add_argument("--url", action="append", default=[], help="backend=URL (overrides)")
    parser.add_argument("--schedules", type=int, default=1_000, help="schedules, every second")
    parser.add_argument("--slots", type=int, default=20, help="simulated seconds")
    parser.add_argument("--items", type=int, default=5_000, help="items of the claim loop")
    parser.add_argument("--beside", type=int, default=100, help="schedules beside the claims")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", default="bench-results/schedules.json")
    args = parser.parse_args(argv)
    logging.getLogger("workclaim").setLevel(logging.ERROR)
    urls = dict(URLS)
    for spec in args.url:
        name, _, url = spec.partition("=")
        urls[name] = url
    results: dict[str, dict[str, Any]] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        results[backend] = measure(urls[backend], args)
        print(f"{backend}: {json.dumps(results[backend])}", file=sys.stderr)
    print(json.dumps(results, indent=2))
    print(table(results))
    print(f"load average (1 min): {os.getloadavg()[0]:.1f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
