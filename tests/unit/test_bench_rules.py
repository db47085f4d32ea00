"""The bench's pure rules: scenarios by name, percentiles, the winner rule, strict JSON."""

from __future__ import annotations

import math
from typing import Any

import pytest

from workclaim.backends._queryfile import load_queries
from workclaim.bench.metrics import percentile
from workclaim.bench.report import clean, result_of
from workclaim.bench.runner import BenchOptions, backends_for, choose_winner
from workclaim.bench.scenarios import SCENARIOS, resolve
from workclaim.bench.strategies import STRATEGIES
from workclaim.bench.strategies.mariadb_db import database_name, with_database
from workclaim.bench.strategies.table import PACKAGE, dialect_of
from workclaim.errors import ValidationError


def test_scenarios_by_name_and_custom() -> None:
    assert [s.name for s in resolve([])] == ["spike-2x10", "spike-10x10"]
    assert [(s.name, s.runs) for s in resolve([], runs=3)] == [
        ("spike-2x10", 3),
        ("spike-10x10", 3),
    ]
    assert resolve(["drain"], workers=2)[0].name == "drain*"
    [custom] = resolve([], workers=3, items=100)
    assert (custom.name, custom.workers, custom.items, custom.runs) == ("custom", 3, 100, 1)
    assert resolve(["contention"])[0] == SCENARIOS["contention"]
    with pytest.raises(ValidationError, match="unknown scenario"):
        resolve(["nope"])
    with pytest.raises(ValidationError, match="workers"):
        resolve([], workers=0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def _row(strategy: str, *, dup: int = 0, rate: float = 1.0, p95: float = 1.0) -> dict[str, Any]:
    return {
        "strategy": strategy,
        "backend": "sqlite",
        "status": "ok",
        "success_rate": rate,
        "p95_ms": p95,
        "throughput": 100.0,
        "duplicates": dup,
        "violations": dup,
        "errors": 0,
        "criteria": {"zero_duplicates": dup == 0, "p95_under_50ms": p95 < 50},
    }


def test_the_winner_is_correct_first_then_success_then_p95() -> None:
    rows = [
        _row("naive", dup=5, rate=1.0, p95=0.1),
        _row("optimistic", rate=0.6, p95=0.5),
        _row("skip-locked", rate=1.0, p95=9.0),
        _row("select-then-update", rate=1.0, p95=3.0),
        {"strategy": "redis-lock", "backend": "sqlite+redis", "status": "skipped"},
    ]
    winner = choose_winner(rows)
    assert winner["ranking"] == ["select-then-update", "skip-locked", "optimistic", "naive"]
    assert winner["winner"] == "select-then-update"
    assert "naive is out: 5 duplicates" in winner["rationale"]
    assert choose_winner([])["winner"] is None


def test_results_and_json_are_strict() -> None:
    assert result_of(_row("x")) == "PASSED"
    assert result_of(_row("x", dup=1)) == "FAILED (zero_duplicates)"
    assert result_of({"status": "skipped", "reason": "no server"}) == "skipped: no server"
    assert clean({"a": [math.nan, 1.0], "b": math.inf}) == {"a": [None, 1.0], "b": None}


def test_mariadb_rows_run_only_when_a_mariadb_url_is_given() -> None:
    scenarios = resolve([])
    without = BenchOptions(strategies=list(STRATEGIES), scenarios=scenarios)
    with_it = BenchOptions(
        strategies=list(STRATEGIES), scenarios=scenarios, mariadb_url="mariadb://root@h/test"
    )
    for strategy in STRATEGIES:
        assert "mariadb" not in [b for b, _ in backends_for(without, strategy)]
        assert ("mariadb", "mariadb://root@h/test") in backends_for(with_it, strategy)


def test_a_mariadb_row_gets_a_database_of_its_own() -> None:
    assert database_name("wcb_Ab-12.x") == "wcb_ab_12_x"
    url = "mariadb://u:p@db.example:3307/shared?connect_timeout=3"
    assert with_database(url, "wcb_1") == "mariadb://u:p@db.example:3307/wcb_1?connect_timeout=3"
    assert dialect_of("mariadb://h/db") == dialect_of("mysql://h/db") == "mariadb"
    assert dialect_of("postgresql://h/db") == "postgres"
    assert dialect_of("sqlite:///x.db") == "sqlite"


@pytest.mark.parametrize(
    "module", ["naive", "optimistic", "select_then_update", "redis_lock", "table"]
)
def test_every_returning_query_has_a_mariadb_twin(module: str) -> None:
    """MariaDB has no `UPDATE ... RETURNING` and no `WITH ... INSERT`: a query using either must
    have a `<name>_mariadb` stand-in, or the MariaDB rows would fail on it."""
    queries = load_queries(PACKAGE, f"{module}.sql")
    for name, sql in queries.items():
        text = sql.upper()
        unsupported = ("UPDATE" in text and "RETURNING" in text) or text.startswith("WITH")
        if name.endswith("_mariadb"):
            assert not unsupported, f"{module}.sql: {name} uses SQL MariaDB lacks"
        elif unsupported:
            assert f"{name}_mariadb" in queries, f"{module}.sql: {name} has no MariaDB twin"
