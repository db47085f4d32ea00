"""PostgreSQL queues under sustained load: a fixed offered rate for many minutes, a held snapshot,
and recovery (issue 18; docs/postgres.md has the figures).

A producer process enqueues at `--rate` items/s, credited on real elapsed time (a producer that
falls behind catches up in bigger batches; its own lag is reported), `--processes` consumer
processes run the system's worker with `--concurrency` handlers each, every handler sleeping
`--job-ms`. The run goes through phases, each `name=seconds`: `warmup`, `clean`, `held` (another
connection keeps `BEGIN; SELECT txid_current();` open, so vacuum can remove nothing newer) and
`recovery`. Every `--interval` seconds it writes one JSON line: completions/s, offered/s, the
backlog (offered - completed), pickup latency p50/p95/p99 (enqueue to handler start, from
HdrHistograms the consumers send), and per table and index of the system's schema its size, live
and dead tuples and its vacuum/analyze counts. At the end: a summary (per phase p95 and rate, the
held/clean p95 ratio, how long recovery took to drain the backlog and bring p95 within 1.2x of
clean, the largest sizes), a PNG of the series, both beside the JSON lines.

`--autovacuum on|off` sets the server's setting for the run (ALTER SYSTEM + reload, reset after;
needs a superuser), `keep` leaves it; the setting in force is recorded either way.
`--retention SECONDS` sets workclaim's `retention_seconds` (default seven days, so nothing is
pruned in a run): the one-hour size run prunes after 300 s, so sizes can level off.

    python -m benchmarks.long_horizon --system workclaim                 # the default phases
    benchmarks/peers/.venv/bin/python -m benchmarks.long_horizon --system pgqueuer   # make peers
    python -m benchmarks.long_horizon --phases warmup=5,clean=10,held=10,recovery=10  # smoke
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as queue_module
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.long_horizon_systems import SYSTEMS, System

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_PHASES = "warmup=60,clean=300,held=900,recovery=300"
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3  # pickup latency range kept: 1 µs .. 1 h
FLUSH_SECONDS = 1.0  # how often a consumer sends its histogram
TICK = 0.02  # the producer's crediting step
REPORT_SECONDS = 0.25  # how often the producer reports its count


def _histogram() -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


# -- processes ---------------------------------------------------------------------------------
def produce(
    system_name: str, url: str, schema: str, rate: float, stop: Any, out: Any, start_at: float
) -> None:
    """Enqueue `rate` items/s from `start_at` until `stop`; report counts every second."""
    system: System = SYSTEMS[system_name]()
    offer = system.producer(url, schema)
    while time.time() < start_at:
        time.sleep(0.005)
    sent = 0
    last_report = time.time()
    while not stop.is_set():
        now = time.time()
        due = int(rate * (now - start_at)) - sent
        if due > 0:
            batch = min(due, 5_000)
            offer([now] * batch)
            sent += batch
        if now - last_report >= REPORT_SECONDS:
            out.put(("offered", now, sent, max(0, int(rate * (now - start_at)) - sent)))
            last_report = now
        time.sleep(TICK)
    out.put(("offered", time.time(), sent, 0))


def consume(
    system_name: str,
    url: str,
    schema: str,
    concurrency: int,
    job_seconds: float,
    stop: Any,
    out: Any,
) -> None:
    """Run the system's worker; send (count, histogram) every second."""
    system: System = SYSTEMS[system_name]()
    lock = threading.Lock()
    state = {"hist": _histogram(), "count": 0}

    def picked(enqueued_at: float) -> None:
        micros = max(LOWEST_US, min(HIGHEST_US, int((time.time() - enqueued_at) * 1e6)))
        with lock:
            state["hist"].record_value(micros)
            state["count"] += 1

    def flush() -> None:
        with lock:
            hist, count = state["hist"], state["count"]
            state["hist"], state["count"] = _histogram(), 0
        out.put(("picked", time.time(), count, hist.encode()))

    local_stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            time.sleep(FLUSH_SECONDS)
            flush()
        local_stop.set()

    threading.Thread(target=flusher, daemon=True).start()
    system.consume(url, schema, concurrency, job_seconds, picked, local_stop)
    flush()


# -- the server's side -------------------------------------------------------------------------
def table_stats(conn: Any, schema: str) -> dict[str, dict[str, Any]]:
    """Size, live/dead tuples and vacuum/analyze counts of every table and index in `schema`."""
    rows = conn.execute(
        """
        SELECT c.relname, c.relkind, pg_relation_size(c.oid),
               s.n_live_tup, s.n_dead_tup, s.autovacuum_count, s.autoanalyze_count,
               s.vacuum_count, s.analyze_count
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
        WHERE n.nspname = %s AND c.relkind IN ('r', 'i')
        """,
        (schema,),
    ).fetchall()
    stats: dict[str, dict[str, Any]] = {}
    for name, kind, size, live, dead, autovac, autoanalyze, vac, analyze in rows:
        entry: dict[str, Any] = {"kind": "table" if kind == "r" else "index", "bytes": size}
        if kind == "r":
            entry |= {
                "live": live,
                "dead": dead,
                "autovacuum": autovac,
                "autoanalyze": autoanalyze,
                "vacuum": vac,
                "analyze": analyze,
            }
        stats[name] = entry
    return stats


def set_autovacuum(url: str, mode: str) -> str:
    """Apply `--autovacuum` and return the setting now in force."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if mode in ("on", "off"):
            conn.execute(f"ALTER SYSTEM SET autovacuum = {mode}")
            conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)
        row = conn.execute("SHOW autovacuum").fetchone()
    return str(row[0]) if row else "unknown"


def reset_autovacuum(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM RESET autovacuum")
        conn.execute("SELECT pg_reload_conf()")


class HeldSnapshot:
    """A connection holding a transaction with an xid open: vacuum keeps every row version
    newer than it (what a long report or an `idle in transaction` session does)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url)
        self.xid = self.conn.execute("SELECT txid_current()").fetchone()

    def close(self) -> None:
        self.conn.rollback()
        self.conn.close()


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Interval:
    """What one sampling interval saw."""

    phase: str
    t: float
    offered: int = 0
    completed: int = 0
    hist: Any = field(default_factory=_histogram)


def parse_phases(text: str) -> list[tuple[str, float]]:
    phases = []
    for part in text.split(","):
        name, _, seconds = part.partition("=")
        if name not in ("warmup", "clean", "held", "recovery"):
            raise SystemExit(f"unknown phase {name!r}: use warmup, clean, held, recovery")
        phases.append((name, float(seconds)))
    return phases


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    system: System = SYSTEMS[args.system]()
    schema = f"horizon_{args.system}"
    system.prepare(args.url, schema)
    autovacuum = set_autovacuum(args.url, args.autovacuum)
    phases = parse_phases(args.phases)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{args.system}-av{autovacuum}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    lines_path = out_dir / f"{stem}.jsonl"

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    out: Any = ctx.Queue()
    start_at = time.time() + 3.0
    procs = [
        ctx.Process(
            target=produce,
            args=(args.system, args.url, schema, args.rate, stop, out, start_at),
        )
    ]
    procs += [
        ctx.Process(
            target=consume,
            args=(
                args.system,
                args.url,
                schema,
                args.concurrency,
                args.job_ms / 1000,
                stop,
                out,
            ),
        )
        for _ in range(args.processes)
    ]
    for proc in procs:
        proc.start()

    offered_total = 0
    producer_lag = 0
    completed_total = 0
    series: list[dict[str, Any]] = []
    phase_hists: dict[str, Any] = {}
    monitor = psycopg.connect(args.url, autocommit=True)
    held: HeldSnapshot | None = None
    try:
        while time.time() < start_at:
            time.sleep(0.05)
        for phase, seconds in phases:
            if phase == "held":
                held = HeldSnapshot(args.url)
            phase_hists[phase] = _histogram()
            phase_end = time.time() + seconds
            while time.time() < phase_end:
                interval = Interval(phase, time.time())
                interval_end = min(phase_end, interval.t + args.interval)
                while time.time() < interval_end:
                    try:
                        msg = out.get(timeout=max(0.01, interval_end - time.time()))
                    except queue_module.Empty:
                        continue
                    if msg[0] == "offered":
                        interval.offered += msg[2] - offered_total
                        offered_total, producer_lag = msg[2], msg[3]
                    else:
                        from hdrh.histogram import HdrHistogram

                        interval.completed += msg[2]
                        if msg[2]:
                            interval.hist.add(HdrHistogram.decode(msg[3]))
                completed_total += interval.completed
                phase_hists[phase].add(interval.hist)
                elapsed = time.time() - interval.t
                line = {
                    "t": round(time.time() - start_at, 1),
                    "phase": phase,
                    "offered_per_s": round(interval.offered / elapsed, 1),
                    "completed_per_s": round(interval.completed / elapsed, 1),
                    "backlog": offered_total - completed_total,
                    "producer_lag": producer_lag,
                    "pickup_ms": _quantiles(interval.hist),
                    "tables": table_stats(monitor, schema),
                }
                series.append(line)
                with lines_path.open("a") as fh:
                    fh.write(json.dumps(line) + "\n")
                print(_one_line(line), flush=True)
            if held is not None:
                held.close()
                held = None
    finally:
        if held is not None:
            held.close()
        stop.set()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
        monitor.close()
        if args.autovacuum in ("on", "off"):
            reset_autovacuum(args.url)

    summary = summarise(args, autovacuum, phases, series, phase_hists)
    (out_dir / f"{stem}.summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(series, phases, out_dir / f"{stem}.png", f"{args.system}, autovacuum {autovacuum}")
    print(json.dumps(summary, indent=2))
    return summary


def _quantiles(hist: Any) -> dict[str, float | None]:
    if hist.get_total_count() == 0:
        return {"p50": None, "p95": None, "p99": None}
    return {f"p{q}": round(hist.get_value_at_percentile(q) / 1000, 2) for q in (50, 95, 99)}


def _one_line(line: dict[str, Any]) -> str:
    sizes = sum(entry["bytes"] for entry in line["tables"].values())
    dead = sum(entry.get("dead") or 0 for entry in line["tables"].values())
    p = line["pickup_ms"]
    return (
        f"{line['t']:7.1f}s {line['phase']:8s} offered {line['offered_per_s']:8.1f}/s "
        f"done {line['completed_per_s']:8.1f}/s backlog {line['backlog']:7d} "
        f"p95 {p['p95']} ms dead {dead} size {sizes / 1e6:.1f} MB"
    )


def summarise(
    args: argparse.Namespace,
    autovacuum: str,
    phases: list[tuple[str, float]],
    series: list[dict[str, Any]],
    phase_hists: dict[str, Any],
) -> dict[str, Any]:
    """Per phase: rate and pickup quantiles; the held/clean p95 ratio; recovery's drain time."""
    per_phase: dict[str, Any] = {}
    for phase, _ in phases:
        lines = [line for line in series if line["phase"] == phase]
        if not lines:
            continue
        per_phase[phase] = {
            "completed_per_s": round(
                sum(line["completed_per_s"] for line in lines) / len(lines), 1
            ),
            "offered_per_s": round(sum(line["offered_per_s"] for line in lines) / len(lines), 1),
            "pickup_ms": _quantiles(phase_hists[phase]),
            "backlog_end": lines[-1]["backlog"],
            "dead_tuples_end": sum(e.get("dead") or 0 for e in lines[-1]["tables"].values()),
            "bytes_end": sum(e["bytes"] for e in lines[-1]["tables"].values()),
        }
    clean = per_phase.get("clean", {}).get("pickup_ms", {}).get("p95")
    held = per_phase.get("held", {}).get("pickup_ms", {}).get("p95")
    recovered_after = None
    recovery_lines = [line for line in series if line["phase"] == "recovery"]
    if clean and recovery_lines:
        base = recovery_lines[0]["t"] - args.interval
        for line in recovery_lines:
            p95 = line["pickup_ms"]["p95"]
            if (
                p95 is not None
                and p95 <= 1.2 * clean
                and line["backlog"] <= max(args.rate, 1) * 1.0
            ):
                recovered_after = round(line["t"] - base, 1)
                break
    return {
        "system": args.system,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "autovacuum": autovacuum,
        "rate": args.rate,
        "processes": args.processes,
        "concurrency": args.concurrency,
        "job_ms": args.job_ms,
        "retention_seconds": getattr(args, "retention", None),
        "phases": dict(phases),
        "per_phase": per_phase,
        "held_over_clean_p95": round(held / clean, 2) if clean and held else None,
        "recovered_within_1_2x_after_s": recovered_after,
        "max_bytes": max(sum(e["bytes"] for e in line["tables"].values()) for line in series)
        if series
        else None,
        "load_average": [round(x, 2) for x in _loadavg()],
    }


def _loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


def plot(
    series: list[dict[str, Any]], phases: list[tuple[str, float]], path: Path, title: str
) -> None:
    """Three panels over time: rates, pickup p95/p99, dead tuples and total size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not series:
        return
    t = [line["t"] for line in series]
    fig, (rates, pickup, tables) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    rates.plot(t, [line["offered_per_s"] for line in series], label="offered/s")
    rates.plot(t, [line["completed_per_s"] for line in series], label="completed/s")
    rates.set_ylabel("items/s")
    rates.legend()
    for q in ("p95", "p99"):
        pickup.plot(t, [line["pickup_ms"][q] or float("nan") for line in series], label=q)
    pickup.set_yscale("log")
    pickup.set_ylabel("pickup latency (ms)")
    pickup.legend()
    tables.plot(t, [sum(e.get("dead") or 0 for e in line["tables"].values()) for line in series])
    tables.set_ylabel("dead tuples")
    sizes = tables.twinx()
    sizes.plot(
        t,
        [sum(e["bytes"] for e in line["tables"].values()) / 1e6 for line in series],
        color="tab:red",
    )
    sizes.set_ylabel("tables + indexes (MB)", color="tab:red")
    edge = 0.0
    for _, seconds in phases:
        edge += seconds
        for axis in (rates, pickup, tables):
            axis.axvline(edge, color="grey", linestyle=":")
    tables.set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="workclaim")
    parser.add_argument("--url", default=PG_URL)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered items/s")
    parser.add_argument("--processes", type=int, default=2, help="consumer processes")
    parser.add_argument("--concurrency", type=int, default=16, help="handlers per process")
    parser.add_argument("--job-ms", type=float, default=1.0, help="each handler's sleep")
    parser.add_argument("--phases", default=DEFAULT_PHASES, help="name=seconds,...")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds per sample")
    parser.add_argument("--autovacuum", choices=("on", "off", "keep"), default="keep")
    parser.add_argument(
        "--retention",
        type=float,
        help="workclaim's retention_seconds (default: Settings' 7 days), through "
        "WORKCLAIM_RETENTION_SECONDS, which the producer and worker processes read",
    )
    parser.add_argument("--out", default="bench-results/long_horizon")
    args = parser.parse_args(argv)
    if args.retention is not None:
        os.environ["WORKCLAIM_RETENTION_SECONDS"] = str(args.retention)
    run(args)


if __name__ == "__main__":
    main()
