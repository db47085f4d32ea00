"""What a test does when something it needs is missing: a server, a binary, an optional package.

One rule for the whole suite: locally the test skips with one line of reason; under `CI=true` it
fails, so CI cannot pass without running every test. A test that does not apply (say, a step
that only SQLite has) skips with a reason starting "not applicable: "; the long fault scenarios
skip unless `make soak` asks for them. Under CI=true any other skip, however it was raised, is
turned into a failure by this module's hooks (which tests/conftest.py imports), so neither a plain
`pytest.skip` nor a module-level skip or `importorskip` can hide a missing part.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Generator
from types import ModuleType
from typing import NoReturn

import pytest

# How a skip that is no missing part starts: the test does not apply, or is a soak scenario.
LEGITIMATE_SKIPS = ("not applicable: ", "soak scenario: ")


def in_ci() -> bool:
    """True when running under CI, where a missing part is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip (locally) or fail (CI) the test, or the whole module when called at import time,
    because something it needs cannot be had."""
    if in_ci():
        pytest.fail(f"unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str, why: str) -> ModuleType:
    """`module`, imported; `unavailable` when it or a package it imports is not installed.

    Only a missing module counts: any other ImportError (a broken import in our own code) is
    raised as it is.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = str(exc)
    unavailable(f"{why} ({missing})")


def _fail_unless_legitimate(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Under CI=true, turn a skip that is not legitimate (see LEGITIMATE_SKIPS) into a failure."""
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not reason.startswith(LEGITIMATE_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, and not as 'not applicable': {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test's skip (in setup, call or teardown) is checked by `_fail_unless_legitimate`."""
    report = yield
    _fail_unless_legitimate(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A whole module's skip (`allow_module_level`, `importorskip`) is checked the same way."""
    report = yield
    _fail_unless_legitimate(report)
    return report
