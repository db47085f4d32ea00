"""`workclaim bench` end to end: the spike's two scenarios with few runs, on SQLite and on the
session's PostgreSQL, Redis and MariaDB (the ones the rest of the suite uses; a missing one is
`unavailable`: a skip locally, a failure under CI=true). Every row must be measured: a row in
error, or skipped although its servers are there, fails. Checks the report's structure and the one
result that must never change: `naive` shows duplicates, every other strategy none. No timing
thresholds."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.missing import unavailable
from tests.support.redisserver import session_redis_url
from tests.support.servers import mariadb_server, postgres_session
from workclaim.bench.report import write_outputs
from workclaim.bench.runner import BenchOptions, run_bench
from workclaim.bench.scenarios import resolve
from workclaim.bench.strategies import STRATEGIES
from workclaim.cli import app

# About 21 rows of 2-10 spawned processes each: several minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROW_FIGURES = {
    "attempts",
    "claims",
    "lost_races",
    "empty",
    "empty_while_work",
    "success_rate",
    "duplicates",
    "violations",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "throughput",
    "criteria",
    "check",
    "settings",
}


# server name -> (the session's URL, or None; why not)
Servers = dict[str, tuple[str | None, str]]


@pytest.fixture(scope="module")
def servers(request: pytest.FixtureRequest) -> Servers:
    """The session's PostgreSQL, Redis and MariaDB, found the way every other test finds them."""
    return {
        "postgres": postgres_session(request.config),
        "redis": session_redis_url(),
        "mariadb": mariadb_server(),
    }


@pytest.fixture(scope="module")
def doc(servers: Servers) -> dict[str, Any]:
    """Both spike scenarios with 2 runs each on SQLite, and the high-contention one on the
    session's servers: every strategy everywhere it runs, in as few processes as that takes."""
    strategies = list(STRATEGIES)
    postgres, redis, mariadb = (servers[name][0] for name in ("postgres", "redis", "mariadb"))
    doc = run_bench(
        BenchOptions(
            strategies=strategies,
            scenarios=resolve(["spike-2x10", "spike-10x10"], runs=2),
            redis_url=redis,
        )
    )
    if postgres or redis or mariadb:
        servers = run_bench(
            BenchOptions(
                strategies=strategies,
                scenarios=resolve(["spike-10x10"], runs=2),
                postgres_url=postgres,
                redis_url=redis,
                mariadb_url=mariadb,
                sqlite=False,
            )
        )
        doc["rows"] += servers["rows"]
    return doc


def _runnable(server: str, servers: Servers) -> set[tuple[str, str]]:
    """(strategy, backend) of every row that uses `server` and that the bench can run with the
    servers this session has (a `redis-lock` row needs Redis beside its SQL store)."""
    have = {"sqlite"} | {name for name, (url, _) in servers.items() if url is not None}
    rows = set()
    for strategy, info in STRATEGIES.items():
        for backend in info.backends:
            label = f"{backend}+redis" if info.needs_redis else backend
            if server in label.split("+") and set(label.split("+")) <= have:
                rows.add((strategy, label))
    return rows


def test_no_row_errs_or_is_skipped_with_its_servers_there(
    doc: dict[str, Any], servers: Servers
) -> None:
    runnable = set().union(*(_runnable(name, servers) for name in ("sqlite", *servers)))
    for row in doc["rows"]:
        where = f"{row['strategy']} / {row['backend']} / {row['scenario']}"
        assert row["status"] in {"ok", "skipped"}, f"{where}: {row['status']}: {row['reason']}"
        if row["status"] == "skipped":
            assert (row["strategy"], row["backend"]) not in runnable, f"{where}: {row['reason']}"


@pytest.mark.parametrize("server", ["postgres", "redis", "mariadb"])
def test_every_strategy_is_measured_on_each_server(
    server: str, doc: dict[str, Any], servers: Servers
) -> None:
    url, why = servers[server]
    if url is None:
        unavailable(why)
    measured = {(r["strategy"], r["backend"]) for r in doc["rows"] if r["status"] == "ok"}
    missing = _runnable(server, servers) - measured
    assert not missing, f"no measured row for {sorted(missing)}"


def test_every_row_has_every_figure(doc: dict[str, Any]) -> None:
    assert set(doc) >= {"environment", "scenarios", "rows", "criteria", "winner"}
    assert doc["environment"]["cpu_count"] >= 1
    measured = [r for r in doc["rows"] if r["status"] == "ok"]
    assert {r["strategy"] for r in measured} >= {
        "skip-locked",
        "select-then-update",
        "optimistic",
        "naive",
    }
    for row in measured:
        assert set(row) >= ROW_FIGURES, row
        assert row["claims"] >= row["items_per_run"] * row["runs"]
        assert row["attempts"] == row["claims"] + row["lost_races"] + row["empty"] + row["errors"]
        assert row["empty_while_work"] <= row["empty"]
        assert 0.0 <= row["success_rate"] <= 1.0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]


def test_naive_shows_duplicates_and_every_other_strategy_none(doc: dict[str, Any]) -> None:
    for row in doc["rows"]:
        if row["status"] != "ok":
            continue
        if row["strategy"] == "naive":
            if row["scenario"] == "spike-10x10":
                assert row["duplicates"] > 0, row["check"]
                assert not row["check"]["ok"]
        else:
            assert row["duplicates"] == 0, row["check"]
            assert row["check"]["ok"], row["check"]
            assert row["completed"] == row["items"]


def test_the_winner_is_correct_and_explained(doc: dict[str, Any]) -> None:
    winner = doc["winner"]
    assert winner["winner"] in STRATEGIES and winner["winner"] != "naive"
    assert winner["per_strategy"][winner["winner"]]["correct"]
    assert winner["ranking"][-1] == "naive"
    assert "success rate" in winner["rationale"]


def test_outputs_are_written(doc: dict[str, Any], tmp_path: Path) -> None:
    written = write_outputs(doc, tmp_path)
    data = json.loads(Path(written["json"]).read_text())
    assert len(data["rows"]) == len(doc["rows"])
    assert all(
        not isinstance(v, float) or math.isfinite(v) for row in data["rows"] for v in row.values()
    )
    assert "| strategy |" in Path(written["markdown"]).read_text()
    assert Path(written["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_prints_only_json_with_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "-s",
            "skip-locked",
            "-s",
            "redis-lock",
            "--workers",
            "2",
            "--items",
            "20",
            "--runs",
            "2",
            "--postgres",
            "postgresql://nobody@127.0.0.1:1/none",
            "--mariadb",
            "mariadb://nobody@127.0.0.1:1/none",
            "--out",
            str(tmp_path),
            "--json",
        ],
        env={"WORKCLAIM_BENCH_REDIS": ""},
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {(r["strategy"], r["backend"]): r for r in data["rows"]}
    assert rows[("skip-locked", "sqlite")]["status"] == "ok"
    assert rows[("skip-locked", "postgres")]["status"] == "skipped"  # unreachable: no crash
    assert rows[("skip-locked", "mariadb")]["status"] == "skipped"
    assert rows[("redis-lock", "mariadb+redis")]["status"] == "skipped"
    assert rows[("redis-lock", "sqlite+redis")]["status"] == "skipped"
    assert (tmp_path / "bench.json").exists()
