"""Runs the bench: every strategy x backend x scenario row through the harness, checked and
measured, then the spike's success criteria and a winner chosen by a stated rule."""

from __future__ import annotations

import math
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from workclaim._version import __version__
from workclaim.bench.harness import RaceConfig, WorkPlan, run_race
from workclaim.bench.metrics import row_metrics
from workclaim.bench.scenarios import Scenario
from workclaim.bench.strategies import STRATEGIES, Target
from workclaim.bench.strategies.base import strip_query
from workclaim.bench.strategies.table import libpq_url
from workclaim.errors import WorkclaimError

P95_TARGET_MS = 50.0
WINNER_RULE = (
    "correct first (zero duplicates and zero checker violations on every row it ran), "
    "then the higher success rate, then the lower p95 claim latency, then the higher throughput"
)


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What to run: strategies, scenarios, and the optional servers beside embedded SQLite."""

    strategies: Sequence[str]
    scenarios: Sequence[Scenario]
    postgres_url: str | None = None
    redis_url: str | None = None
    mariadb_url: str | None = None
    sqlite: bool = True
    plan: WorkPlan = field(default_factory=WorkPlan)
    keep_histories: Path | None = None


RowProgress = Callable[[str, int, int], None]


def backends_for(options: BenchOptions, strategy: str) -> list[tuple[str, str | None]]:
    """(backend, URL or None when not configured) for each row of a strategy."""
    info = STRATEGIES[strategy]
    rows: list[tuple[str, str | None]] = []
    if options.sqlite and "sqlite" in info.backends:
        rows.append(("sqlite", "sqlite"))
    if options.postgres_url is not None and "postgres" in info.backends:
        rows.append(("postgres", options.postgres_url))
    if options.redis_url is not None and "redis" in info.backends:
        rows.append(("redis", options.redis_url))
    if options.mariadb_url is not None and "mariadb" in info.backends:
        rows.append(("mariadb", options.mariadb_url))
    return rows


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _target(strategy: str, backend: str, url: str, options: BenchOptions, tmp: Path) -> Target:
    """A row's target, isolated: its own SQLite file, PostgreSQL schema, MariaDB database or
    Redis key prefix, which the row drops when it ends (never anything else on the server)."""
    tag = f"wcb_{uuid.uuid4().hex[:10]}"
    owned: dict[str, str] = {}
    if backend == "sqlite":
        url = f"sqlite:///{tmp / (tag + '.db')}"
    elif strategy == "skip-locked" and backend == "mariadb":
        from workclaim.bench.strategies.mariadb_db import create_database, with_database

        create_database(url, tag)  # the Queue's migration makes the tables, not the database
        url, owned = with_database(url, tag), {"drop_mariadb_database": tag}
    elif strategy == "skip-locked" and backend == "postgres":
        url, owned = _with_query(url, schema=tag), {"drop_postgres_schema": tag}
    elif strategy == "skip-locked" and backend == "redis":
        url, owned = _with_query(url, prefix=tag), {"drop_redis_prefix": tag}
    return Target(strategy, backend, url, tag, redis_url=options.redis_url, options=owned)


def run_row(
    strategy: str,
    backend: str,
    url: str,
    scenario: Scenario,
    options: BenchOptions,
    tmp: Path,
    progress: RowProgress | None = None,
) -> dict[str, Any]:
    """One row: measured figures, or `skipped` with the reason the store could not be used."""
    row: dict[str, Any] = {
        "strategy": strategy,
        "backend": backend,
        "scenario": scenario.name,
        "workers": scenario.workers,
        "items_per_run": scenario.items,
        "runs": scenario.runs,
    }
    if STRATEGIES[strategy].needs_redis:
        row["backend"] = f"{backend}+redis"  # the SQL store, with the locks in Redis
    if STRATEGIES[strategy].needs_redis and not options.redis_url:
        return {**row, "status": "skipped", "reason": "needs Redis: give --redis URL"}
    try:
        target = _target(strategy, backend, url, options, tmp)
    except ImportError as exc:
        return {**row, "status": "skipped", "reason": f"not available in this install: {exc}"}
    except WorkclaimError as exc:
        return {**row, "status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    history = tmp / f"{target.tag}-history"
    config = RaceConfig(target, scenario.workers, scenario.items, scenario.runs, options.plan)
    label = f"{strategy} / {backend} / {scenario.name}"
    try:
        race = run_race(
            config,
            history,
            None if progress is None else lambda done, total: progress(label, done, total),
        )
    except ImportError as exc:
        return {**row, "status": "skipped", "reason": f"not available in this install: {exc}"}
    except WorkclaimError as exc:
        return {**row, "status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # never crash the whole bench for one row
        return {**row, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    figures = row_metrics(race)
    if options.keep_histories is not None:
        dest = options.keep_histories / f"{strategy}-{backend}-{scenario.name}".replace("*", "")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(history, dest)
        figures["history_dir"] = str(dest)
    shutil.rmtree(history, ignore_errors=True)
    status = "error" if race.worker_errors else "ok"
    result = {**row, "status": status, **figures, "settings": race.settings}
    if race.worker_errors:
        result["reason"] = race.worker_errors[0].strip().splitlines()[-1]
    result["criteria"] = {
        "zero_duplicates": figures["duplicates"] == 0 and figures["violations"] == 0,
        "p95_under_50ms": bool(figures["p95_ms"] < P95_TARGET_MS),
    }
    return result


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    per: dict[str, dict[str, Any]] = {}
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == strategy and r["status"] == "ok"]
        if not mine:
            continue
        rates = [r["success_rate"] for r in mine if not math.isnan(r["success_rate"])]
        backends = {r["backend"].split("+")[0] for r in mine if r["criteria"]["zero_duplicates"]}
        per[strategy] = {
            "rows": len(mine),
            "correct": all(r["criteria"]["zero_duplicates"] for r in mine),
            "errors": sum(r["errors"] for r in mine),
            "duplicates": sum(r["duplicates"] for r in mine),
            "violations": sum(r["violations"] for r in mine),
            "success_rate": sum(rates) / len(rates) if rates else math.nan,
            "worst_p95_ms": max(r["p95_ms"] for r in mine),
            "throughput": sum(r["throughput"] for r in mine) / len(mine),
            "backends": sorted({r["backend"] for r in mine}),
            "works_on_sqlite_and_postgres": {"sqlite", "postgres"} <= backends,
        }
    return per


def choose_winner(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The winner by `WINNER_RULE`, with a rationale that quotes the figures."""
    per = _aggregate(rows)
    if not per:
        return {"rule": WINNER_RULE, "winner": None, "rationale": "no row was measured"}

    def key(item: tuple[str, dict[str, Any]]) -> tuple[bool, float, float, float]:
        a = item[1]
        rate = a["success_rate"] if not math.isnan(a["success_rate"]) else 0.0
        return (not a["correct"], -rate, a["worst_p95_ms"], -a["throughput"])

    ranking = sorted(per.items(), key=key)
    name, best = ranking[0]
    parts = [
        f"{name} wins: {'correct' if best['correct'] else 'NOT correct'} on all {best['rows']} "
        f"rows ({best['duplicates']} duplicates, {best['violations']} violations), mean success "
        f"rate {best['success_rate']:.1%}, worst p95 {best['worst_p95_ms']:.2f} ms, mean "
        f"throughput {best['throughput']:,.0f} claims/s."
    ]
    for other, a in ranking[1:]:
        if not a["correct"]:
            parts.append(
                f"{other} is out: {a['duplicates']} duplicates, {a['violations']} violations."
            )
        else:
            parts.append(
                f"{other}: success {a['success_rate']:.1%}, worst p95 "
                f"{a['worst_p95_ms']:.2f} ms, {a['throughput']:,.0f} claims/s."
            )
    return {
        "rule": WINNER_RULE,
        "winner": name,
        "ranking": [n for n, _ in ranking],
        "per_strategy": per,
        "rationale": " ".join(parts),
    }


def _version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _server_versions(options: BenchOptions) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if options.postgres_url:
        try:
            import psycopg

            with psycopg.connect(libpq_url(options.postgres_url), connect_timeout=3) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                found["postgres_server"] = row[0] if row else None
        except Exception as exc:
            found["postgres_server"] = f"unreachable: {exc}"
    if options.redis_url:
        try:
            import redis

            client = redis.Redis.from_url(
                strip_query(options.redis_url, "prefix", "health_check_interval"),
                socket_connect_timeout=3,
            )
            try:
                found["redis_server"] = client.info("server").get("redis_version")
            finally:
                client.close()
        except Exception as exc:
            found["redis_server"] = f"unreachable: {exc}"
    if options.mariadb_url:
        try:
            from workclaim.bench.strategies.mariadb_db import connect

            conn = connect(options.mariadb_url, database=False)
            try:
                cur = conn.cursor()
                cur.execute("SELECT VERSION()")
                found["mariadb_server"] = cur.fetchone()[0]
            finally:
                conn.close()
        except Exception as exc:
            found["mariadb_server"] = f"unreachable: {exc}"
    return found


def environment(options: BenchOptions) -> dict[str, Any]:
    """Versions, machine and commit: enough to reproduce or distrust the figures."""
    return {
        "workclaim": __version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "psycopg": _version_of("psycopg"),
        "redis_py": _version_of("redis"),
        "mysqlclient": _version_of("mysqlclient"),
        "postgres_url": _redact(options.postgres_url),
        "redis_url": _redact(options.redis_url),
        "mariadb_url": _redact(options.mariadb_url),
        **_server_versions(options),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _redact(url: str | None) -> str | None:
    if url is None or "@" not in url or ":" not in url.split("@", 1)[0].split("//", 1)[-1]:
        return url
    scheme, rest = url.split("//", 1)
    creds, host = rest.split("@", 1)
    return f"{scheme}//{creds.split(':', 1)[0]}:***@{host}"


def run_bench(options: BenchOptions, progress: RowProgress | None = None) -> dict[str, Any]:
    """Every row of the bench, the winner and the environment, as one JSON-able document."""
    started = time.monotonic()
    env = environment(options)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="workclaim-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for scenario in options.scenarios:
            for strategy in options.strategies:
                for backend, url in backends_for(options, strategy):
                    rows.append(
                        run_row(strategy, backend, url or "", scenario, options, tmp, progress)
                    )
    return {
        "environment": env,
        "scenarios": [
            {"name": s.name, "workers": s.workers, "items": s.items, "runs": s.runs}
            for s in options.scenarios
        ],
        "rows": rows,
        "criteria": {
            "zero_duplicates": "no duplicate claim and no checker violation across all runs",
            "p95_under_50ms": f"p95 claim latency under {P95_TARGET_MS:g} ms",
            "works_on_sqlite_and_postgres": "correct rows on both SQLite and PostgreSQL",
        },
        "winner": choose_winner(rows),
        "elapsed_seconds": round(time.monotonic() - started, 2),
    }
