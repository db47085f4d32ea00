"""`workclaim bench` end to end: the spike's two scenarios with few runs, on SQLite and on the
servers that answer. Checks the report's structure and the one result that must never change:
`naive` shows duplicates, every other strategy none. No timing thresholds."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from workclaim.bench.report import write_outputs
from workclaim.bench.runner import BenchOptions, run_bench
from workclaim.bench.scenarios import resolve
from workclaim.bench.strategies import STRATEGIES
from workclaim.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

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


def _reachable_postgres() -> str | None:
    url = os.environ.get("WORKCLAIM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=2):
            return url
    except Exception:
        return None


def _reachable_redis() -> str | None:
    url = os.environ.get("WORKCLAIM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return url
    except Exception:
        return None


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """One bench over both spike scenarios with 3 runs each, every strategy, every server."""
    options = BenchOptions(
        strategies=list(STRATEGIES),
        scenarios=resolve(["spike-2x10", "spike-10x10"], runs=3),
        postgres_url=_reachable_postgres(),
        redis_url=_reachable_redis(),
    )
    return run_bench(options)


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
    for row in doc["rows"]:
        assert row["status"] in {"ok", "skipped", "error"}, row
        if row["status"] != "ok":
            assert row["reason"]
            continue
        assert set(row) >= ROW_FIGURES, row
        assert row["claims"] >= row["items_per_run"] * row["runs"]
        assert row["attempts"] == row["claims"] + row["lost_races"] + row["empty"] + row["errors"]
        assert row["empty_while_work"] <= row["empty"]
        assert 0.0 <= row["success_rate"] <= 1.0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["errors"] == 0, row


def test_naive_shows_duplicates_and_every_other_strategy_none(doc: dict[str, Any]) -> None:
    for row in doc["rows"]:
        if row["status"] != "ok":
            continue
        if row["strategy"] == "naive":
            if row["scenario"] == "spike-10x10*":
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
    assert rows[("redis-lock", "sqlite+redis")]["status"] == "skipped"
    assert (tmp_path / "bench.json").exists()
