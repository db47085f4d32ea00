"""Fault scenarios: `faults` tests run by default; `soak` ones only with --soak or WORKCLAIM_SOAK=1

A soak session prints the fault table and writes it to bench-results/soak.json.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import report
from tests.faults.harness import FaultRun

_started = time.monotonic()


@pytest.fixture
def runs() -> Iterator[list[FaultRun]]:
    """FaultRuns of this test, closed afterwards."""
    made: list[FaultRun] = []
    yield made
    for run in made:
        run.close()


RESULTS = Path(__file__).resolve().parents[2] / "bench-results" / "soak.json"


def soak_enabled(config: pytest.Config) -> bool:
    """True when this session runs the long scenarios too."""
    return bool(config.getoption("--soak")) or os.environ.get("WORKCLAIM_SOAK", "") in {
        "1",
        "true",
        "yes",
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `soak` tests unless the soak was asked for (an explicit `-m` still selects)."""
    if soak_enabled(config):
        return
    skip = pytest.mark.skip(reason="soak scenario: run with `make soak` (--soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the fault table; in a soak session also write bench-results/soak.json."""
    if not report.ROWS:
        return
    terminalreporter.write_sep("=", "fault table")
    terminalreporter.write_line(report.table(report.ROWS))
    if soak_enabled(config):
        report.write_json(RESULTS, report.ROWS, time.monotonic() - _started)
        terminalreporter.write_line(f"written to {RESULTS}")
