"""The peer benchmark: workclaim against PGQueuer, procrastinate, huey, saq and RQ (and the raw
claim baselines) on the same machine, the same workload and in the same run. On MariaDB only
workclaim and the raw baseline run (see README.md: no peer's built-in storage is MariaDB).

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
import os
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
    parser.add_argument(
        "--quick", action="store_true",
        help="the narrower default: 5,000 items and 10 workers (the targets' count), 3 reps, "
        "every row; explicit --items/--workers/--reps/--systems still win",
    )  # fmt: skip
    parser.add_argument("--workers", help="worker process counts (default 1,2,10,32)")
    parser.add_argument("--items", type=int, help="items pre-filled per run (default 20000)")
    parser.add_argument("--reps", type=int, help="repetitions, medians reported (default 3)")
    parser.add_argument(
        "--systems",
        help="comma list, 'all' (default) or 'all+extra' (adds the unfused runtime rows): "
        f"{', '.join([*systems.REGISTRY, *systems.EXTRA])}",
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
        "--mariadb-url", default="auto",
        help="'auto' (a throwaway mariadbd started here), 'none' (skip MariaDB), or a URL of a "
        "server where the benchmark may create and drop its own databases (peers_*)",
    )  # fmt: skip
    parser.add_argument(
        "--redis-persistence", default="none", choices=sorted(servers.REDIS_PERSISTENCE),
        help="persistence of the throwaway redis-server (default: none, like the shared one)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run at most")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--list", action="store_true", help="list the systems and exit")
    args = parser.parse_args(argv)
    quick = {"workers": "10", "items": 5_000, "reps": 3, "systems": "all"}
    full = {"workers": "1,2,10,32", "items": 20_000, "reps": 3, "systems": "all"}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def pick_systems(spec: str) -> list[str]:
    sets = {
        "all": list(systems.REGISTRY),
        "all+extra": [*systems.REGISTRY, *systems.EXTRA],
    }
    if spec in sets:
        return sets[spec]
    names = [s.strip() for s in spec.split(",") if s.strip()]
    known = {**systems.REGISTRY, **systems.EXTRA}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown}; known: {', '.join(known)}")
    return names


def start_servers(args: argparse.Namespace, wanted: set[str]) -> tuple[dict[str, Any], list[Any]]:
    """The env every system reads (URLs, temp dir) and the servers to stop at the end."""
    env: dict[str, Any] = {
        "sqlite_dir": tempfile.mkdtemp(prefix="peers-sqlite-"),
        "load_start": [round(x, 2) for x in os.getloadavg()],
    }
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
    if "mariadb" in wanted and args.mariadb_url != "none":
        if args.mariadb_url == "auto":
            try:
                my = servers.MariadbServer()
                my.start()
                started.append(my)
                env["mariadb_url"] = my.url
            except Exception as exc:
                print(f"MariaDB rows skipped: {exc}", file=sys.stderr)
        else:
            env["mariadb_url"] = args.mariadb_url
    env["redis_persistence"] = args.redis_persistence if env.get("redis_own") else "as given"
    return env, started


def _history(system: Any) -> str:
    """workclaim's attempt-history setting for this row ('on'/'off'), '' for other systems."""
    flag = getattr(system, "history", None)
    return "" if flag is None else ("on" if flag else "off")


def available(name: str, env: dict[str, Any]) -> bool:
    """Whether this row can run here: its server is up and its code exists (says why not)."""
    system = systems.load(name)
    need = {"postgres": "pg_url", "redis": "redis_url", "mariadb": "mariadb_url"}.get(
        system.backend
    )
    if need and need not in env:
        return False
    why = getattr(system, "unavailable", lambda: None)()
    if why:
        print(f"{name} skipped: {why}", file=sys.stderr)
    return not why


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in [*systems.REGISTRY, *systems.EXTRA]:
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
    history = {n: _history(systems.load(n)) for n in names}

    def summary(complete: bool) -> dict[str, Any]:
        wall = time.monotonic() - began
        result = report.summarise(runs, args, env, wall, notes, claims, history)
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
    # workclaim's and the raw rows must be exact; a peer's duplicate is its own at-least-once
    # delivery, reported in the table but not a failure of this benchmark
    ours = [r for r in result["rows"] if r["system"].startswith(("workclaim", "raw-"))]
    bad = [r for r in ours if r["duplicates"] or r["missing"] or r["unexpected"]]
    bad += [r for r in result["rows"] if r["missing"] or r["unexpected"] or r["errors"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
