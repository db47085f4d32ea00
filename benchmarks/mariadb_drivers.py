"""mysqlclient against PyMySQL: the raw MariaDB claim+complete through each driver, same run.

The MariaDB backend's driver choice (docs/decisions.md) rests on this. For each repetition and
each driver in turn (interleaved, so drift hits both alike): pre-fill N no-op items in the raw
table (benchmarks/raw/mariadb.py), start W spawn processes, release them together and let each
claim (single or batched) and complete until the table is empty. Reported per driver: items/s,
claim p50/p95, and the client's CPU time per item (what the driver itself costs: on a shared
machine the CPU time is steadier than the wall clock). A loop of `SELECT 1` per driver on one
connection gives the bare round trip. Every run is checked: zero duplicate ids, zero missing.

    python -m benchmarks.mariadb_drivers --url mariadb://root@127.0.0.1:3306/wc_drv \
        --workers 1,10 --batches 1,100 --items 5000 --reps 3

PyMySQL is in the `bench` extra only, never a runtime dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.claim_throughput import _percentile, run_spawned
from benchmarks.raw import mariadb as raw


def _drain(driver: str, url: str, batch: int, barrier: Any, out: Any) -> None:
    """One spawn process: claim and complete through `driver` until the table is empty."""
    try:
        worker = raw.open_worker(url, driver)
        latencies: list[float] = []
        got: list[int] = []
        try:
            barrier.wait(120)
            cpu0, start = time.process_time(), time.perf_counter()
            while True:
                t0 = time.perf_counter()
                rows = worker.claim(batch)
                latencies.append(time.perf_counter() - t0)
                if not rows:
                    break
                for item_id, token in rows:
                    worker.complete(item_id, token)
                    got.append(item_id)
            end, cpu = time.perf_counter(), time.process_time() - cpu0
        finally:
            worker.close()
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    out.put(("ok", (start, end, cpu, latencies, got)))


def run_once(driver: str, url: str, workers: int, batch: int, items: int) -> dict[str, Any]:
    """One measured drain of `items` by `workers` processes through `driver`."""
    raw.prefill(url, items)
    reports = run_spawned(_drain, (driver, url, batch), workers, what=driver)
    ids = [i for r in reports for i in r[4]]
    latencies = [x for r in reports for x in r[3]]
    seconds = max(r[1] for r in reports) - min(r[0] for r in reports)
    return {
        "driver": driver,
        "workers": workers,
        "batch": batch,
        "items_per_s": len(ids) / seconds,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p95_ms": _percentile(latencies, 0.95) * 1000,
        "cpu_us_per_item": sum(r[2] for r in reports) / max(1, len(ids)) * 1e6,
        "duplicates": len(ids) - len(set(ids)),
        "missing": items - len(set(ids)),
    }


def round_trip_us(url: str, driver: str, n: int) -> tuple[float, float]:
    """Median wall and mean CPU microseconds of one `SELECT 1` through `driver`."""
    conn = raw.connect(url, driver)
    try:
        cur = conn.cursor()
        walls = []
        cpu0 = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchall()
            walls.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu0
    finally:
        conn.close()
    return statistics.median(walls) * 1e6, cpu / n * 1e6


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (driver, workers, batch), with PyMySQL's ratio to mysqlclient."""
    keys = sorted({(r["driver"], r["workers"], r["batch"]) for r in runs})
    rows = []
    for driver, workers, batch in keys:
        mine = [
            r for r in runs if (r["driver"], r["workers"], r["batch"]) == (driver, workers, batch)
        ]
        row: dict[str, Any] = {
            "driver": driver,
            "workers": workers,
            "batch": batch,
            "reps": len(mine),
        }
        for field in ("items_per_s", "p50_ms", "p95_ms", "cpu_us_per_item"):
            row[field] = statistics.median(r[field] for r in mine)
        row["duplicates"] = sum(r["duplicates"] for r in mine)
        row["missing"] = sum(r["missing"] for r in mine)
        rows.append(row)
    base = {(r["workers"], r["batch"]): r for r in rows if r["driver"] == "mysqlclient"}
    for row in rows:
        ref = base.get((row["workers"], row["batch"]))
        if ref:
            row["throughput_vs_mysqlclient"] = row["items_per_s"] / ref["items_per_s"]
            row["cpu_vs_mysqlclient"] = row["cpu_us_per_item"] / ref["cpu_us_per_item"]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="mariadb://root@127.0.0.1:3306/wc_drv")
    parser.add_argument("--workers", default="1,10")
    parser.add_argument("--batches", default="1,100")
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pings", type=int, default=5_000, help="SELECT 1 round trips per driver")
    parser.add_argument("--json", default="bench-results/mariadb_drivers.json")
    args = parser.parse_args(argv)
    loads = [os.getloadavg()[0]]
    runs: list[dict[str, Any]] = []
    for workers in (int(w) for w in args.workers.split(",")):
        for rep in range(args.reps):
            for batch in (int(b) for b in args.batches.split(",")):
                for driver in raw.DRIVERS:
                    r = run_once(driver, args.url, workers, batch, args.items)
                    runs.append(r)
                    print(
                        f"  {driver:<11} W={workers:<3} batch={batch:<4} rep {rep + 1}: "
                        f"{r['items_per_s']:7.0f} items/s  {r['cpu_us_per_item']:6.0f} us CPU/item",
                        file=sys.stderr,
                    )
        loads.append(os.getloadavg()[0])
    raw.prefill(args.url, 0)
    pings = {d: round_trip_us(args.url, d, args.pings) for d in raw.DRIVERS}
    raw.drop(args.url)
    rows = summarise(runs)
    print(
        f"{'driver':<11} {'W':>3} {'batch':>5} {'items/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'CPU us/item':>11} {'thr/mysqlclient':>15} {'cpu/mysqlclient':>15} "
        f"{'dup':>3} {'miss':>4}"
    )
    for r in rows:
        ratio = f"{r.get('throughput_vs_mysqlclient', float('nan')):.2f}"
        cpu = f"{r.get('cpu_vs_mysqlclient', float('nan')):.2f}"
        print(
            f"{r['driver']:<11} {r['workers']:>3} {r['batch']:>5} {r['items_per_s']:>8.0f} "
            f"{r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} {r['cpu_us_per_item']:>11.0f} "
            f"{ratio:>15} {cpu:>15} {r['duplicates']:>3} {r['missing']:>4}"
        )
    for driver, (wall, cpu) in pings.items():
        print(f"SELECT 1 through {driver}: {wall:.0f} us wall (median), {cpu:.1f} us CPU (mean)")
    rounded = [round(x, 1) for x in loads]
    print(f"load average (1 min) at the start and after each worker count: {rounded}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "load_average": loads,
                "summary": rows,
                "runs": runs,
                "select_1_us": pings,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 1 if any(r["duplicates"] or r["missing"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
