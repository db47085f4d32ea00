"""One run: prefill a fresh queue, release N worker processes together, time start to empty,
and check the recorded history (every item processed exactly once)."""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue as queue_mod
import secrets
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import systems
from systems.base import Recorder

STARTUP_TIMEOUT = 180.0  # worker processes connecting before the barrier (32 on 2 cores)

# Imported once in the fork server, so 32 workers do not each pay the libraries' import time.
PRELOAD = [
    "systems", "systems.base", "systems.workclaim_queue", "workclaim", "psycopg", "redis",
    "asyncpg", "pgqueuer", "procrastinate", "huey", "saq", "rq", "MySQLdb",
]  # fmt: skip


@dataclass
class Verdict:
    """What the recorded ids say about correctness."""

    processed: int
    duplicates: int  # extra deliveries: processed minus distinct
    missing: int  # expected items nobody processed
    unexpected: int  # ids that were never enqueued


def verify(expected: Iterable[int] | None, per_worker: Iterable[Iterable[int]], n: int) -> Verdict:
    """Check the union of every worker's recorded ids against what was enqueued (`expected`,
    or, for stores that number items themselves, just `n` distinct ids)."""
    counts: Counter[int] = Counter()
    for ids in per_worker:
        counts.update(ids)
    processed = sum(counts.values())
    if expected is None:
        missing, unexpected = max(0, n - len(counts)), max(0, len(counts) - n)
    else:
        wanted = set(expected)
        missing, unexpected = len(wanted - counts.keys()), len(counts.keys() - wanted)
    return Verdict(
        processed=processed,
        duplicates=processed - len(counts),
        missing=missing,
        unexpected=unexpected,
    )


def percentile_ms(values: list[int], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1e6


def _child(name: str, ctx: dict[str, Any], barrier: Any, out: Any, index: int) -> None:
    """A worker process: build the system, connect, wait at the barrier, drain, report."""
    rec = Recorder()
    started = False
    quiet_logs()

    def start() -> None:
        nonlocal started
        barrier.wait(STARTUP_TIMEOUT)
        started = True

    try:
        system = systems.load(name)
        system.work(ctx, start, rec)
        out.put((index, rec.ids, rec.claims_ns, time.monotonic(), None))
    except BaseException:
        if not started:
            barrier.abort()
        out.put((index, rec.ids, rec.claims_ns, time.monotonic(), traceback.format_exc()))


def quiet_logs() -> None:
    """Keep worker output to errors: the report states each side's durability once, and the
    libraries' per-worker start/stop chatter would drown the progress lines."""
    for name in ("workclaim", "saq", "rq", "procrastinate", "pgqueuer", "huey"):
        logging.getLogger(name).setLevel(logging.ERROR)


def mp_context() -> Any:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def run_once(
    name: str, env: dict[str, Any], workers: int, items: int, timeout: float
) -> dict[str, Any]:
    """Prefill `items` items, drain them with `workers` processes; one result row."""
    system = systems.load(name)
    run_id = secrets.token_hex(4)
    ctx = system.prepare(env, run_id)
    row: dict[str, Any] = {
        "system": name, "backend": system.backend, "workers": workers, "items": items,
    }  # fmt: skip
    procs: list[Any] = []
    try:
        system.prefill(ctx, items)
        mpc = mp_context()
        barrier, out = mpc.Barrier(workers + 1), mpc.Queue()
        procs = [
            mpc.Process(target=_child, args=(name, ctx, barrier, out, i), daemon=True)
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        results: list[Any] = []
        errors: list[str] = []
        try:
            barrier.wait(STARTUP_TIMEOUT)
        except threading.BrokenBarrierError:
            try:
                failed = out.get(timeout=10)
                errors.append(failed[4] or "a worker failed before the start")
            except queue_mod.Empty:
                errors.append("workers did not reach the start barrier")
            row.update(error=errors[0].strip().splitlines()[-1], error_detail=errors[0])
            return row
        t0 = time.monotonic()
        deadline = t0 + timeout
        while len(results) < workers:
            try:
                result = out.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue_mod.Empty:
                errors.append(f"timed out after {timeout:.0f} s")
                break
            results.append(result)
            if result[4]:
                errors.append(result[4])
        t_end = max((r[3] for r in results), default=time.monotonic())
        elapsed = t_end - t0
        expected = getattr(system, "expected", lambda n: range(n))(items)
        verdict = verify(expected, (r[1] for r in results), items)
        claims = [ns for r in results for ns in r[2]]
        row.update(
            seconds=round(elapsed, 4),
            items_per_s=round(verdict.processed / elapsed, 1) if elapsed > 0 else None,
            claim_calls=len(claims),
            p50_ms=percentile_ms(claims, 50),
            p95_ms=percentile_ms(claims, 95),
            p99_ms=percentile_ms(claims, 99),
            processed=verdict.processed,
            duplicates=verdict.duplicates,
            missing=verdict.missing,
            unexpected=verdict.unexpected,
            error=errors[0].strip().splitlines()[-1] if errors else None,
        )
        if errors:
            row["error_detail"] = errors[0]
        return row
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        system.cleanup(ctx)
