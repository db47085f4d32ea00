"""Claim latency as finished rows pile up: claim p95 with 0, 1M, 5M finished rows present.

For each count in --rows (ascending; the same store grows between steps): top the store up with
finished ("done") items in another queue, then enqueue --items fresh items and let --workers
spawn processes claim one at a time (completing each) until empty, timing every claim call.
Prints p50/p95/p99 and items/s per step, medians over --reps, and each step's p95 against the
step with no finished rows (issue 8's target: at most 1.5). On a shared machine the load drifts
between steps, so with --control-url (derived for SQLite: the path plus `.control`) every rep
is also run on a second store that never holds finished rows, interleaved, and the step's
p95 is also given against that control's p95 in the same step. Works with any workclaim URL:

    python -m benchmarks.growth --url 'sqlite:////tmp/growth.db' --rows 0,1000000,5000000
    python -m benchmarks.growth --url 'postgresql://postgres@127.0.0.1:5432/test?schema=wc_growth' \
        --control-url 'postgresql://postgres@127.0.0.1:5432/test?schema=wc_growth_control'
    python -m benchmarks.growth --url 'redis://127.0.0.1:6379/15?prefix=wc:growth'

Finished rows are written by a store-specific bulk filler where there is one (SQLite: one
INSERT ... SELECT, with two history events per item when history is on; PostgreSQL:
benchmarks.claim_throughput.add_done_rows), else through the API (enqueue, claim and
complete_and_claim in batches of 1000: slow for millions). --history off enqueues every item
without history. The store is emptied first (SQLite files deleted, PostgreSQL schema dropped;
other stores: use a fresh prefix). Not a test: figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.claim_throughput import reset_workclaim, run_spawned

from workclaim import Queue, Settings
from workclaim._time import now_micros

QUEUE = "growth"
FILLER_QUEUE = "growth-done"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# -- fillers: add n finished items ----------------------------------------------------------
def fill_sqlite(url: str, n: int, history: bool) -> None:
    """n done items, as a completed item looks (with its two events), 500,000 per commit."""
    for start in range(0, n, 500_000):
        _fill_sqlite_chunk(url, min(500_000, n - start), history)


def _fill_sqlite_chunk(url: str, n: int, history: bool) -> None:
    import sqlite3

    path = unquote(urlsplit(url).path)
    conn = sqlite3.connect(path[1:] if path.startswith("/") else path, isolation_level=None)
    try:
        now = now_micros()
        conn.execute("BEGIN IMMEDIATE")
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM workclaim_items").fetchone()[0]
        token = conn.execute("SELECT value FROM workclaim_counters WHERE name = 'token'").fetchone()
        conn.execute(
            """WITH RECURSIVE g(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM g WHERE k < :n)
               INSERT INTO workclaim_items (queue, payload, status, priority, run_at, attempts,
                   max_attempts, token, worker, lease_us, ended_token, ended_op, ended_status,
                   last_event, history, created_at, updated_at, finished_at)
               SELECT :queue, '{}', 'done', 0, :now, 1, 5, :token + k, 'old', 30000000,
                      :token + k, 'complete', 'done', 'completed', :history, :now, :now, :now
               FROM g""",
            {"n": n, "queue": FILLER_QUEUE, "now": now, "token": token[0], "history": history},
        )
        conn.execute(
            "UPDATE workclaim_counters SET value = value + :n WHERE name = 'token'", {"n": n}
        )
        if history:
            conn.execute(
                """INSERT INTO workclaim_history
                       (item_id, seq, kind, at, attempt, status, token, worker)
                   SELECT id, e.seq, e.kind, :now, 1, e.status, token, worker
                   FROM workclaim_items,
                        (SELECT 1 AS seq, 'claimed' AS kind, 'claimed' AS status
                         UNION ALL SELECT 2, 'completed', 'done') AS e
                   WHERE id >= :first
                   ORDER BY id, e.seq""",
                {"now": now, "first": first},
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def fill_postgres(url: str, n: int, history: bool) -> None:
    """The PostgreSQL filler of benchmarks.claim_throughput (items only)."""
    from benchmarks.claim_throughput import add_done_rows

    add_done_rows(url, n)


def fill_api(url: str, n: int, history: bool) -> None:
    """Any store: enqueue, claim and complete in batches of 1000 through the public API."""
    with Queue(url, settings=Settings(history=history)) as q:
        for start in range(0, n, 1000):
            size = min(1000, n - start)
            q.enqueue_many(FILLER_QUEUE, [{}] * size)
            leases = q.claim(FILLER_QUEUE, worker="filler", lease_seconds=600, limit=size)
            q.complete_and_claim(leases, FILLER_QUEUE, worker="filler", limit=0)


FILLERS: dict[str, Callable[[str, int, bool], None]] = {
    "sqlite": fill_sqlite,
    "postgresql": fill_postgres,
    "postgres": fill_postgres,
}


# -- the measured step ----------------------------------------------------------------------
def _worker(url: str, barrier: Any, out: Any) -> None:
    """Claim one item at a time (completing each) until empty; report latencies and count."""
    try:
        latencies: list[float] = []
        done = 0
        with Queue(url) as q:
            name = f"g{os.getpid()}"
            barrier.wait(120)
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                leases = q.claim(QUEUE, worker=name, lease_seconds=300)
                latencies.append(time.perf_counter() - t0)
                if not leases:
                    break
                for lease in leases:
                    q.complete(lease)
                    done += 1
            end = time.perf_counter()
        out.put(("ok", (start, end, latencies, done)))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


def measure(url: str, items: int, workers: int, history: bool) -> dict[str, float]:
    with Queue(url, settings=Settings(history=history)) as q:
        for start in range(0, items, 1000):
            q.enqueue_many(QUEUE, [{}] * min(1000, items - start))
    reports = run_spawned(_worker, (url,), workers, what="growth")
    lat = [x for _, _, ls, _ in reports for x in ls]
    done = sum(d for _, _, _, d in reports)
    seconds = max(r[1] for r in reports) - min(r[0] for r in reports)
    if done != items:
        raise RuntimeError(f"{done} items completed, {items} expected")
    return {
        "throughput": done / seconds,
        "p50_ms": _percentile(lat, 0.50) * 1000,
        "p95_ms": _percentile(lat, 0.95) * 1000,
        "p99_ms": _percentile(lat, 0.99) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a workclaim URL (its store is emptied)")
    parser.add_argument("--rows", default="0,1000000,5000000", help="finished rows, ascending")
    parser.add_argument("--items", type=int, default=2000, help="items claimed per measurement")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--history", choices=("on", "off"), default="on")
    parser.add_argument("--fill", choices=("auto", "api"), default="auto")
    parser.add_argument("--control-url", help="a second store of the same kind, never filled")
    parser.add_argument("--json", default="bench-results/growth.json")
    args = parser.parse_args(argv)
    history = args.history == "on"
    steps = [int(r) for r in args.rows.split(",")]
    if steps != sorted(steps):
        parser.error("--rows must be ascending (the store grows between steps)")
    scheme = urlsplit(args.url).scheme.lower()
    filler = FILLERS.get(scheme, fill_api) if args.fill == "auto" else fill_api
    control = args.control_url
    if control is None and scheme == "sqlite":
        base_url, _, query = args.url.partition("?")
        control = base_url + ".control" + ("?" + query if query else "")
    for url in (args.url, control):
        if url:
            reset_workclaim(url)
            Queue(url).close()  # create the schema
    present = 0
    rows: list[dict[str, Any]] = []
    for step in steps:
        if step > present:
            t0 = time.perf_counter()
            filler(args.url, step - present, history)
            present = step
            print(
                f"  filled to {present} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr
            )
        runs, controls = [], []
        for _ in range(args.reps):  # interleaved, so drift hits both alike
            runs.append(measure(args.url, args.items, args.workers, history))
            if control:
                controls.append(measure(control, args.items, args.workers, history))
        row: dict[str, Any] = {"finished_rows": step, "reps": len(runs)}
        for key in ("throughput", "p50_ms", "p95_ms", "p99_ms"):
            row[key] = statistics.median(r[key] for r in runs)
        row["runs"] = runs
        if controls:
            row["control_p95_ms"] = statistics.median(r["p95_ms"] for r in controls)
            row["control_runs"] = controls
        rows.append(row)
        print(
            f"  {step:>9} rows: {row['throughput']:8.0f} items/s  p50 {row['p50_ms']:.3f} ms  "
            f"p95 {row['p95_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms"
            + (f"  (control p95 {row['control_p95_ms']:.3f} ms)" if controls else ""),
            file=sys.stderr,
        )
    base = rows[0]["p95_ms"] if rows and rows[0]["finished_rows"] == 0 else None
    print(
        f"{'finished':>10} {'items/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'p95/0':>6} {'ctl p95':>8} {'p95/ctl':>7}"
    )
    for row in rows:
        ratio = f"{row['p95_ms'] / base:.2f}" if base else ""
        row["p95_vs_none"] = row["p95_ms"] / base if base else None
        ctl = row.get("control_p95_ms")
        row["p95_vs_control"] = row["p95_ms"] / ctl if ctl else None
        print(
            f"{row['finished_rows']:>10} {row['throughput']:>9.0f} {row['p50_ms']:>8.3f} "
            f"{row['p95_ms']:>8.3f} {row['p99_ms']:>8.3f} {ratio:>6} "
            f"{ctl or float('nan'):>8.3f} {row['p95_vs_control'] or float('nan'):>7.2f}"
        )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"args": vars(args), "load": os.getloadavg(), "steps": rows}, indent=2)
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
