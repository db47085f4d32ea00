"""The peer benchmark: workclaim against PGQueuer, procrastinate, huey, saq and RQ (and the raw
claim baselines) on the same machine, the same workload and in the same run.

Each run pre-fills a fresh queue with --items no-op items, releases N worker processes together
and times start to empty; every worker records the ids it processed and the run checks there
is no duplicate and no missing item. Repetitions interleave the systems, so ratios to workclaim
are taken pair by pair within a repetition (absolute figures drift on a shared machine).

    benchmarks/peers/.venv/bin/python benchmarks/peers/run.py            # the full default run
    benchmarks/peers/.venv/bin/python benchmarks/peers/run.py --workers 1,10 --items 2000 \\
        --reps 1 --systems workclaim-sqlite,huey                         # a quick one
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import report  # noqa: E402
import servers  # noqa: E402
import systems  # noqa: E402

DEFAULT_OUT = HERE.parent.parent / "bench-results" / "peers"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2,10,32", help="worker process counts")
    parser.add_argument("--items", type=int, default=20_000, help="items pre-filled per run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (medians are reported)")
    parser.add_argument(
        "--systems", default="all", help=f"comma list or 'all': {', '.join(systems.REGISTRY)}"
    )
    parser.add_argument(
        "--pg-url", default="auto",
        help="'auto' (a throwaway cluster started here), 'none' (skip PostgreSQL), or a URL "
        "of a database where the benchmark may create and drop its own schemas",
    )  # fmt: skip
    parser.add_argument(
        "--redis-url", default="auto",
        help="'auto' (a throwaway redis-server started here), 'none', or a URL (only the "
        "benchmark's keys are deleted there; RQ and saq then share its queues namespace)",
    )  # fmt: skip
    parser.add_argument(
        "--redis-persistence", default="none", choices=sorted(servers.REDIS_PERSISTENCE),
        help="persistence of the throwaway redis-server (default: none, like the shared one)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run at most")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--list", action="store_true", help="list the systems and exit")
    return parser.parse_args(argv)


def pick_systems(spec: str) -> list[str]:
    if spec == "all":
        return list(systems.REGISTRY)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in systems.REGISTRY]
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown}; known: {', '.join(systems.REGISTRY)}")
    return names


def start_servers(args: argparse.Namespace, wanted: set[str]) -> tuple[dict[str, Any], list[Any]]:
    """The env every system reads (URLs, temp dir) and the servers to stop at the end."""
    env: dict[str, Any] = {"sqlite_dir": tempfile.mkdtemp(prefix="peers-sqlite-")}
    started: list[Any] = []
    if "postgres" in wanted and args.pg_url != "none":
        if args.pg_url == "auto":
            try:
                pg = servers.PgServer()
                pg.start()
                started.append(pg)
                env["pg_url"] = pg.url
            except Exception as exc:  # no PostgreSQL here: skip its rows, say why
                print(f"PostgreSQL rows skipped: {exc}", file=sys.stderr)
        else:
            env["pg_url"] = args.pg_url
    if "redis" in wanted and args.redis_url != "none":
        if args.redis_url == "auto":
            try:
                rs = servers.RedisServer(args.redis_persistence)
                rs.start()
                started.append(rs)
                env["redis_url"], env["redis_own"] = rs.url, True
            except Exception as exc:
                print(f"Redis rows skipped: {exc}", file=sys.stderr)
        else:
            env["redis_url"], env["redis_own"] = args.redis_url, False
    env["redis_persistence"] = args.redis_persistence if env.get("redis_own") else "as given"
    return env, started


def available(name: str, env: dict[str, Any]) -> bool:
    """Whether this row can run here: its server is up and its code exists (says why not)."""
    system = systems.load(name)
    need = {"postgres": "pg_url", "redis": "redis_url"}.get(system.backend)
    if need and need not in env:
        return False
    why = getattr(system, "unavailable", lambda: None)()
    if why:
        print(f"{name} skipped: {why}", file=sys.stderr)
    return not why


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in systems.REGISTRY:
            s = systems.load(name)
            print(f"{name:28} {s.backend:9} {s.config_note}")
        return 0
    harness.quiet_logs()
    names = pick_systems(args.systems)
    worker_counts = [int(w) for w in args.workers.split(",")]
    env, started = start_servers(args, {systems.load(n).backend for n in names})
    names = [n for n in names if available(n, env)]
    runs: list[dict[str, Any]] = []
    began = time.monotonic()
    notes = {n: systems.load(n).config_note for n in names}
    claims = {n: systems.load(n).claim_note for n in names}

    def summary(complete: bool) -> dict[str, Any]:
        wall = time.monotonic() - began
        result = report.summarise(runs, args, env, wall, notes, claims)
        result["config"]["complete"] = complete
        return result

    try:
        for rep in range(args.reps):
            for workers in worker_counts:
                for name in names:
                    row = harness.run_once(name, env, workers, args.items, args.timeout)
                    row["rep"] = rep
                    runs.append(row)
                    print(report.progress_line(row), flush=True)
                report.write(summary(complete=False), args.out, quiet=True)  # partial results
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(env["sqlite_dir"], ignore_errors=True)
    result = summary(complete=True)
    report.write(result, args.out)
    print(report.markdown(result))
    bad = [r for r in result["rows"] if r["duplicates"] or r["missing"] or r["errors"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
