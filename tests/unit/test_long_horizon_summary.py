"""What `benchmarks/long_horizon.py` concludes from a run: the phases it accepts, the held/clean
p95 ratio and when recovery counts as done (p95 back within 1.2x of clean *and* the backlog
drained). docs/postgres.md's table is read off these summaries, so the rules are tested here on
series built by hand."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

import pytest

# Imported by name: benchmarks/ is not type-checked (its peers' adapters import packages that
# live only in the peers' virtualenv), so mypy must not follow this import into it.
long_horizon: Any = importlib.import_module("benchmarks.long_horizon")

RATE = 1000.0
INTERVAL = 10.0


def _hist(millis: float, count: int = 100) -> Any:
    hist = long_horizon._histogram()
    hist.record_value(int(millis * 1000), count)
    return hist


def _line(t: float, phase: str, p95: float, backlog: int) -> dict[str, Any]:
    return {
        "t": t,
        "phase": phase,
        "offered_per_s": RATE,
        "completed_per_s": RATE,
        "backlog": backlog,
        "producer_lag": 0,
        "pickup_ms": {"p50": p95, "p95": p95, "p99": p95},
        "tables": {"items": {"kind": "table", "bytes": 1000, "dead": 5}},
    }


def _run(recovery: list[tuple[float, int]]) -> dict[str, Any]:
    """A clean phase at 10 ms, a held one at 15 ms, then `recovery` as (p95, backlog) lines."""
    series = [_line(10.0, "clean", 10.0, 500), _line(20.0, "held", 15.0, 700)]
    series += [
        _line(30.0 + INTERVAL * i, "recovery", p95, backlog)
        for i, (p95, backlog) in enumerate(recovery)
    ]
    phases = [("clean", 10.0), ("held", 10.0), ("recovery", INTERVAL * len(recovery))]
    hists = {"clean": _hist(10.0), "held": _hist(15.0), "recovery": _hist(11.0)}
    args = argparse.Namespace(
        system="workclaim", rate=RATE, processes=2, concurrency=16, job_ms=1.0, interval=INTERVAL
    )
    summary: dict[str, Any] = long_horizon.summarise(args, "off", phases, series, hists)
    return summary


def test_held_over_clean_is_the_ratio_of_the_phase_p95s() -> None:
    summary = _run([(10.0, 0)])
    assert summary["held_over_clean_p95"] == pytest.approx(1.5, rel=0.01)
    assert summary["per_phase"]["clean"]["pickup_ms"]["p95"] == pytest.approx(10.0, rel=0.01)


def test_recovery_needs_both_p95_within_1_2x_and_the_backlog_drained() -> None:
    # p95 back at once but the backlog (5 s of offered load) drains only in the third interval;
    # then p95 rises again: recovered at the end of the third interval, 30 s after it began.
    summary = _run([(11.0, 5000), (11.5, 3000), (11.0, 900), (30.0, 900)])
    assert summary["recovered_within_1_2x_after_s"] == 30.0


def test_recovery_waits_for_p95_even_with_no_backlog() -> None:
    summary = _run([(25.0, 0), (12.5, 0), (11.9, 0)])
    assert summary["recovered_within_1_2x_after_s"] == 30.0


def test_never_recovered_is_none() -> None:
    assert _run([(11.0, 5000), (30.0, 0)])["recovered_within_1_2x_after_s"] is None


def test_phases_are_named_and_timed() -> None:
    assert long_horizon.parse_phases("warmup=5,clean=10,held=20,recovery=30") == [
        ("warmup", 5.0),
        ("clean", 10.0),
        ("held", 20.0),
        ("recovery", 30.0),
    ]
    with pytest.raises(SystemExit, match="unknown phase 'hold'"):
        long_horizon.parse_phases("hold=10")


def test_the_table_row_says_what_the_summary_says() -> None:
    table: Any = importlib.import_module("benchmarks.long_horizon_table")
    line = table.row(_run([(11.0, 5000), (11.5, 3000), (11.0, 900)]))
    assert line.startswith("| workclaim | off | 1,000 | 1,000, 10.0 ms | 1,000, 15.0 ms, 1.5x |")
    assert "| after 30 s |" in line
    never = table.row(_run([(30.0, 0)]))
    assert "| not within the phase |" in never
