"""Claim+complete throughput and claim latency: workclaim against the raw baseline, same run.

For every URL, batch size and worker count: pre-fill N no-op items, start W spawn processes
(each with its own connection), release them together with a barrier, and let each claim (and
complete) until the queue is empty, recording every claim call's latency and every (id, token).
Kinds, interleaved per repetition:
- `workclaim`: `Queue.claim(limit=batch)`, then `Queue.complete` per item (two round trips/item);
- `fused`: `Queue.complete_and_claim(previous batch, limit=batch)`: one round trip per turn that
  completes the last batch and claims the next (the worker runtime's path; its latency column
  times that whole call);
- `raw`: the bare baseline of that backend (benchmarks/raw/<backend>.py), claim then complete.
Every run is checked: zero duplicate ids, zero missing ids. Reports medians over reps, ratios
vs raw at the same batch size and, for `fused`, vs the raw single-claim baseline (`thr/raw1`).

    python -m benchmarks.claim_throughput                       # the full matrix (slow)
    python -m benchmarks.claim_throughput --workers 1,10 --items 2000 --reps 3
    python -m benchmarks.claim_throughput --kinds fused,raw --batches 1,16 --workers 10 \
        --url postgresql://postgres@127.0.0.1:5432/test?schema=wc_bench \
        --url 'redis://127.0.0.1:6379/15?prefix=wc:bench'        # fused vs raw
    python -m benchmarks.claim_throughput --url postgresql://... --done-rows 1000000 \
        --workers 10 --batches 1 --no-raw                        # claims with 1M finished rows
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import queue as queue_module
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.raw import module_for

QUEUE = "bench"
OTEL_ENV = "WORKCLAIM_BENCH_OTEL"  # "sdk": the worker processes set up OpenTelemetry


@dataclass
class RunResult:
    """One measured run (one rep of one configuration)."""

    url: str
    kind: str  # "workclaim", "fused" or "raw"
    workers: int
    batch: int
    items: int
    seconds: float
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    duplicates: int
    missing: int
    retries: int
    retry_reasons: dict[str, int] | None = None  # "Type: message" -> count, for profiling


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# -- the stores -------------------------------------------------------------------------------
def reset_workclaim(url: str) -> None:
    """Empty the workclaim store: delete the SQLite files, drop the PostgreSQL schema, recreate
    the MariaDB database or delete the Redis prefix's keys."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    elif scheme in ("postgresql", "postgres"):
        import psycopg
        from psycopg import sql

        options = dict(parse_qsl(parts.query))
        rest = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("schema", "pool_size")]
        with psycopg.connect(
            urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote))), autocommit=True
        ) as c:
            schema = sql.Identifier(options.get("schema", "workclaim"))
            c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
    elif scheme in ("mariadb", "mysql"):
        # The URL's own database, dropped and made again: give the bench a database of its
        # own (`.../wc_ct`), never one that holds anything else.
        from benchmarks.raw.mariadb import connect

        name = unquote(parts.path.lstrip("/"))
        conn = connect(url, database=False)
        try:
            cur = conn.cursor()
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}`")
        finally:
            conn.close()
    elif scheme in ("redis", "rediss"):
        # Only the keys under the URL's own prefix, and only when one is given: never the
        # default `workclaim` prefix of someone else's data on a shared server.
        prefix = dict(parse_qsl(parts.query)).get("prefix")
        if prefix:
            import redis

            bare = urlunsplit(parts._replace(query=""))
            client = redis.Redis.from_url(bare)
            try:
                for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                    client.unlink(key)
            finally:
                client.close()


def add_done_rows(url: str, n: int) -> None:
    """Insert n finished items (PostgreSQL only) to show they do not slow the claim down."""
    import psycopg
    from psycopg import sql

    from workclaim.backends.postgres.connection import parse_url

    libpq, schema, _ = parse_url(url)
    with psycopg.connect(libpq, autocommit=True) as conn:
        s = sql.Identifier(schema)
        conn.execute(
            sql.SQL(
                """INSERT INTO {}.items (queue, payload, status, priority, run_at, attempts,
                       max_attempts, created_at, updated_at, finished_at, token, worker,
                       ended_token, ended_op, ended_status)
                   SELECT %s, '{{}}', 'done', 0, now(), 1, 5, now(), now(), now(), -g, 'old',
                          -g, 'complete', 'done'
                   FROM generate_series(1, %s) AS g"""
            ).format(s),
            (QUEUE, n),
        )
        conn.execute(sql.SQL("VACUUM ANALYZE {}.items").format(s))


def prefill_workclaim(url: str, n: int, done_rows: int, history: bool = True) -> None:
    """Fresh items for a run; `history` is stored per item, so the workers obey it."""
    from workclaim import Queue, Settings

    reset_workclaim(url)
    with Queue(url, settings=Settings(history=history)) as q:
        if done_rows:
            add_done_rows(url, done_rows)
        for start in range(0, n, 1000):
            q.enqueue_many(QUEUE, [{}] * min(1000, n - start))


# -- the workers ------------------------------------------------------------------------------
def _transient() -> tuple[type[BaseException], ...]:
    """Errors that mean "busy, retry": counted and retried, not fatal."""
    import sqlite3

    from workclaim.errors import BackendUnavailable

    kinds: list[type[BaseException]] = [BackendUnavailable, sqlite3.OperationalError]
    try:
        import psycopg

        kinds.append(psycopg.OperationalError)
    except ImportError:
        pass
    try:
        import MySQLdb

        kinds.append(MySQLdb.OperationalError)  # the raw MariaDB worker's lock waits
    except ImportError:
        pass
    return tuple(kinds)


def _note(reasons: dict[str, int], exc: BaseException) -> None:
    """Count a retried error by type and the start of its message (the JSON keeps them)."""
    key = f"{type(exc).__name__}: {str(exc)[:120]}"
    reasons[key] = reasons.get(key, 0) + 1


def _worker(kind: str, url: str, batch: int, barrier: Any, out: Any) -> None:
    """One spawn process: claim (and complete) until empty after the barrier; report back.

    A "busy, retry later" error (a lock wait past its deadline) is counted and the call is
    repeated (completions are idempotent, claims just try again); anything else is fatal and
    reported as such, so the driver never waits for a worker that died.
    """
    logging.getLogger("workclaim").setLevel(logging.ERROR)  # a line per process otherwise
    if os.environ.get(OTEL_ENV) == "sdk":  # before the Queue: it decides once, when made
        from benchmarks.otel_overhead import configure

        configure("sdk")
    latencies: list[float] = []
    got: list[tuple[int, int]] = []
    retries = 0
    reasons: dict[str, int] = {}
    start = end = time.perf_counter()
    transient = _transient()
    try:
        if kind in ("workclaim", "fused"):
            from workclaim import Queue

            q = Queue(url)
            name = f"w{os.getpid()}"
            finished: list[Any] = []  # fused: the last batch, completed by the next call

            def claim() -> list[Any]:
                if kind == "fused":
                    _lost, leases = q.complete_and_claim(
                        finished, QUEUE, worker=name, lease_seconds=300, limit=batch
                    )
                    finished[:] = leases  # sent back as done on the next turn
                    return [(le, le.id, le.token) for le in leases]
                return [
                    (le, le.id, le.token)
                    for le in q.claim(QUEUE, worker=name, lease_seconds=300, limit=batch)
                ]

            def complete(entry: Any) -> None:
                if kind == "workclaim":
                    q.complete(entry[0])

            close = q.close
        else:
            raw = module_for(url).open_worker(url)

            def claim() -> list[Any]:
                return [(None, i, t) for i, t in raw.claim(batch)]

            def complete(entry: Any) -> None:
                raw.complete(entry[1], entry[2])

            close = raw.close
        try:
            barrier.wait(120)
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                try:
                    entries = claim()  # timed alone; completions follow, outside the timing
                except transient as exc:
                    retries += 1
                    _note(reasons, exc)
                    continue
                latencies.append(time.perf_counter() - t0)
                if not entries:
                    break
                got.extend((entry[1], entry[2]) for entry in entries)
                for entry in entries:
                    for _ in range(1000):
                        try:
                            complete(entry)
                            break
                        except transient as exc:
                            retries += 1
                            _note(reasons, exc)
            end = time.perf_counter()
        finally:
            close()
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    out.put(("ok", (start, end, latencies, got, retries, reasons)))


def run_spawned(target: Any, args: tuple[Any, ...], workers: int, *, what: str) -> list[Any]:
    """Start `workers` spawn processes running `target(*args, barrier, out)`, released together
    by the barrier; return the result each put on `out` as ("ok", result). Raises if any
    reported an error or died without a word (never waits for it)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    reports = []
    while len(reports) < len(procs):
        try:
            reports.append(out.get(timeout=1))
        except queue_module.Empty:
            if not any(p.is_alive() for p in procs) and out.empty():
                reports.append(("error", "a worker exited without reporting"))
    for p in procs:
        p.join(60)
    failures = [detail for status, detail in reports if status != "ok"]
    if failures:
        raise RuntimeError(f"{len(failures)} {what} worker(s) failed: {failures[0]}")
    return [result for _, result in reports]


def run_once(
    kind: str, url: str, workers: int, batch: int, items: int, done_rows: int, history: bool = True
) -> RunResult:
    if kind in ("workclaim", "fused"):
        prefill_workclaim(url, items, done_rows, history)
    else:
        module_for(url).prefill(url, items)
    reports = run_spawned(_worker, (kind, url, batch), workers, what=kind)
    starts, ends, lat, ids = [], [], [], []
    retries = 0
    reasons: dict[str, int] = {}
    for start, end, latencies, got, errors, why in reports:
        for reason, count in why.items():
            reasons[reason] = reasons.get(reason, 0) + count
        starts.append(start)
        ends.append(end)
        lat.extend(latencies)
        ids.extend(item_id for item_id, _ in got)
        retries += errors
    seconds = max(ends) - min(starts)
    unique = set(ids)
    expected = items
    return RunResult(
        url=_redact(url),
        kind=kind,
        workers=workers,
        batch=batch,
        items=items,
        seconds=seconds,
        throughput=len(ids) / seconds if seconds > 0 else float("nan"),
        p50_ms=_percentile(lat, 0.50) * 1000,
        p95_ms=_percentile(lat, 0.95) * 1000,
        p99_ms=_percentile(lat, 0.99) * 1000,
        duplicates=len(ids) - len(unique),
        missing=expected - len(unique),
        retries=retries,
        retry_reasons=reasons,
    )


# -- the report -------------------------------------------------------------------------------
def summarise(results: list[RunResult]) -> list[dict[str, Any]]:
    """Medians over reps per (url, kind, workers, batch), with ratios vs raw."""
    groups: dict[tuple[str, str, int, int], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.url, r.kind, r.workers, r.batch), []).append(r)
    rows: list[dict[str, Any]] = []
    for (url, kind, workers, batch), runs in groups.items():
        rows.append(
            {
                "url": url,
                "kind": kind,
                "workers": workers,
                "batch": batch,
                "reps": len(runs),
                "throughput": statistics.median(r.throughput for r in runs),
                "p50_ms": statistics.median(r.p50_ms for r in runs),
                "p95_ms": statistics.median(r.p95_ms for r in runs),
                "p99_ms": statistics.median(r.p99_ms for r in runs),
                "duplicates": sum(r.duplicates for r in runs),
                "missing": sum(r.missing for r in runs),
                "retries": sum(r.retries for r in runs),
            }
        )
    by_key = {(r["url"], r["kind"], r["workers"], r["batch"]): r for r in rows}
    for row in rows:
        raw = by_key.get((row["url"], "raw", row["workers"], row["batch"]))
        if row["kind"] != "raw" and raw:
            row["throughput_vs_raw"] = row["throughput"] / raw["throughput"]
            row["p95_vs_raw"] = row["p95_ms"] / raw["p95_ms"]
        single = by_key.get((row["url"], "raw", row["workers"], 1))
        if row["kind"] == "fused" and single:
            row["throughput_vs_raw_single"] = row["throughput"] / single["throughput"]
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'store':<11} {'kind':<9} {'W':>3} {'batch':>5} {'items/s':>9} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'p99 ms':>7} {'thr/raw':>7} {'p95/raw':>7} {'thr/raw1':>8} {'dup':>3} "
        f"{'miss':>4} {'retry':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        store = urlsplit(r["url"]).scheme
        ratio = f"{r['throughput_vs_raw']:.2f}" if "throughput_vs_raw" in r else ""
        p95r = f"{r['p95_vs_raw']:.2f}" if "p95_vs_raw" in r else ""
        raw1 = f"{r['throughput_vs_raw_single']:.2f}" if "throughput_vs_raw_single" in r else ""
        print(
            f"{store:<11} {r['kind']:<9} {r['workers']:>3} {r['batch']:>5} "
            f"{r['throughput']:>9.0f} {r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} "
            f"{r['p99_ms']:>7.2f} {ratio:>7} {p95r:>7} {raw1:>8} {r['duplicates']:>3} "
            f"{r['missing']:>4} {r['retries']:>5}"
        )


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, loads: list[float]) -> str:
    """The summary as a Markdown table (medians over reps, ratios to raw)."""

    def fmt(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:.2f}" if key in row else ""

    lines = [
        f"{args.items} items, medians of {args.reps} rep(s), workclaim history {args.history}; "
        f"load average (1 min) {loads}.",
        "",
        "| store | kind | workers | batch | items/s | p50 ms | p95 ms | p99 ms | thr/raw "
        "| p95/raw | thr/raw1 | dup | missing |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {urlsplit(r['url']).scheme} | {r['kind']} | {r['workers']} | {r['batch']} "
            f"| {r['throughput']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {fmt(r, 'throughput_vs_raw')} | {fmt(r, 'p95_vs_raw')} "
            f"| {fmt(r, 'throughput_vs_raw_single')} | {r['duplicates']} | {r['missing']} |"
        )
    lines += [
        "",
        "`thr/raw`, `p95/raw`: against the raw baseline at the same batch size; `thr/raw1`: a "
        "fused row against the raw single claim. A fused row's latency times the whole "
        "complete_and_claim call.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="a workclaim URL (repeatable)")
    parser.add_argument("--workers", default="1,2,10,32", help="worker counts, comma-separated")
    parser.add_argument("--batches", default="1,10,100", help="claim sizes, comma-separated")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--done-rows", type=int, default=0, help="finished rows present first")
    parser.add_argument(
        "--kinds", default="workclaim,fused,raw", help="workclaim, fused, raw (comma-separated)"
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw baseline")
    parser.add_argument(
        "--history",
        choices=("on", "off"),
        default="on",
        help="workclaim's per-item attempt history (default on, as in Settings)",
    )
    parser.add_argument(
        "--otel",
        choices=("off", "sdk"),
        default="off",
        help="sdk: each worker process sets up the OpenTelemetry SDK (spans and metrics)",
    )
    parser.add_argument("--markdown", default="bench-results/claim_throughput.md")
    parser.add_argument("--json", default="bench-results/claim_throughput.json")
    args = parser.parse_args(argv)
    os.environ[OTEL_ENV] = args.otel  # the spawned workers read it
    logging.getLogger("workclaim").setLevel(logging.ERROR)
    urls = args.url or [
        f"sqlite:///{Path(tempfile.gettempdir()) / 'workclaim-bench.db'}",
        "postgresql://postgres@127.0.0.1:5432/test?schema=workclaim_bench",
        "redis://127.0.0.1:6379/15?prefix=workclaim_bench",
        "mariadb://root@127.0.0.1:3306/workclaim_bench",
    ]
    workers = [int(w) for w in args.workers.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if args.no_raw:
        kinds = [k for k in kinds if k != "raw"]
    unknown = set(kinds) - {"workclaim", "fused", "raw"}
    if unknown:
        parser.error(f"unknown kind(s) {sorted(unknown)}")
    # Every (kind, batch) of a repetition runs back to back, so drift hits them alike; fused
    # rows are also compared with the raw single claim, which runs even if 1 is not a batch.
    plan = [(kind, batch) for batch in batches for kind in kinds]
    if "fused" in kinds and "raw" in kinds and 1 not in batches:
        plan.append(("raw", 1))
    load = [os.getloadavg()]
    results: list[RunResult] = []
    failed = 0
    for url in urls:
        for w in workers:
            for rep in range(args.reps):
                for kind, batch in plan:
                    try:
                        r = run_once(
                            kind, url, w, batch, args.items, args.done_rows, args.history == "on"
                        )
                    except RuntimeError as exc:
                        print(f"  run failed, left out: {exc}", file=sys.stderr)
                        failed += 1
                        continue
                    results.append(r)
                    print(
                        f"  {urlsplit(url).scheme} {kind:<9} W={w:<3} batch={batch:<4} "
                        f"rep {rep + 1}: {r.throughput:8.0f} items/s  p95 {r.p95_ms:.2f} ms"
                        f"  dup {r.duplicates} miss {r.missing}",
                        file=sys.stderr,
                    )
            load.append(os.getloadavg())
    rows = summarise(results)
    print_table(rows)
    loads = [round(one, 1) for one, _, _ in load]
    print(f"load average (1 min) at the start and after each URL x workers: {loads}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": {**vars(args), "url": [_redact(u) for u in urls]},
                "load_average": load,
                "summary": rows,
                "runs": [asdict(r) for r in results],
            },
            indent=2,
        )
    )
    md = Path(args.markdown)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(markdown(rows, args, loads))
    print(f"wrote {out} and {md}")
    bad = [r for r in rows if r["duplicates"] or r["missing"]]
    return 1 if bad or failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
