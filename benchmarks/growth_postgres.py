"""Claim latency as finished rows pile up (PostgreSQL): claim p95 with 0, 1M and 5M done rows.

One schema per size (`<schema>_g<rows>`), filled once with done rows (as
`claim_throughput.add_done_rows` writes them); then, rep by rep and size by size (interleaved, so
load drifts hit every size alike), N fresh items are enqueued into that schema, `VACUUM`ed, and W
worker processes claim+complete them (`claim_throughput.run_once`: zero duplicates and missing
items checked). Prints medians and the ratio of each size's p95 to the p95 with no done rows.

    python -m benchmarks.growth_postgres --url 'postgresql://postgres@127.0.0.1:5432/test?schema=wc_growth'
    python -m benchmarks.growth_postgres --url '...' --sizes 0,1000000 --workers 10 --reps 3

The schemas are dropped at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import claim_throughput as ct

from workclaim import Queue
from workclaim.backends.postgres.backend import parse_url
from workclaim.config import Settings


def _with_schema(url: str, schema: str) -> str:
    """The URL with its `schema` option replaced."""
    base, _, query = url.partition("?")
    rest = [p for p in query.split("&") if p and not p.startswith("schema=")]
    return base + "?" + "&".join([*rest, f"schema={schema}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a postgresql:// URL with ?schema=")
    parser.add_argument("--sizes", default="0,1000000,5000000", help="done rows, comma-separated")
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--history", choices=("on", "off"), default="on")
    parser.add_argument("--json", default="bench-results/growth_postgres.json")
    parser.add_argument("--keep", action="store_true", help="keep the schemas")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    libpq, schema, _ = parse_url(args.url)
    settings = Settings(history=args.history == "on")
    urls = {n: _with_schema(args.url, f"{schema}_g{n}") for n in sizes}

    for n, url in urls.items():  # the finished rows, once per size
        ct.reset_workclaim(url)
        Queue(url).close()
        if n:
            ct.add_done_rows(url, n)
        print(f"schema for {n:,} done rows ready", flush=True)

    def enqueue_only(url: str, items: int, done_rows: int) -> None:
        """run_once's prefill, keeping the done rows: fresh items, then VACUUM."""
        with Queue(url, settings=settings) as q:
            for start in range(0, items, 1000):
                q.enqueue_many(ct.QUEUE, [{}] * min(1000, items - start))
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(sql.SQL("VACUUM {}.items").format(sql.Identifier(parse_url(url)[1])))

    ct.prefill_workclaim = enqueue_only  # type: ignore[assignment]
    results: dict[int, list[ct.RunResult]] = {n: [] for n in sizes}
    try:
        for rep in range(1, args.reps + 1):
            for n, url in urls.items():
                r = ct.run_once("workclaim", url, args.workers, args.batch, args.items, n)
                results[n].append(r)
                print(
                    f"rep {rep} done_rows={n:>9,}: {r.throughput:7.0f} items/s  "
                    f"p50 {r.p50_ms:.2f} ms  p95 {r.p95_ms:.2f} ms  dup {r.duplicates} "
                    f"miss {r.missing}",
                    flush=True,
                )
    finally:
        if not args.keep:
            for url in urls.values():
                ct.reset_workclaim(url)

    base_p95 = statistics.median(r.p95_ms for r in results[sizes[0]])
    rows: list[dict[str, Any]] = []
    print(f"\nW={args.workers} batch={args.batch} history={args.history}, medians of {args.reps}")
    print(f"{'done rows':>10} {'items/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p95 ratio':>9}")
    for n in sizes:
        p95 = statistics.median(r.p95_ms for r in results[n])
        row = {
            "done_rows": n,
            "workers": args.workers,
            "batch": args.batch,
            "history": args.history,
            "throughput": statistics.median(r.throughput for r in results[n]),
            "p50_ms": statistics.median(r.p50_ms for r in results[n]),
            "p95_ms": p95,
            "p95_ratio": p95 / base_p95,
            "duplicates": sum(r.duplicates for r in results[n]),
            "missing": sum(r.missing for r in results[n]),
        }
        rows.append(row)
        print(
            f"{n:>10,} {row['throughput']:8.0f} {row['p50_ms']:7.2f} {p95:7.2f} "
            f"{row['p95_ratio']:9.2f}"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
