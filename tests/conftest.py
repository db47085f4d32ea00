"""Fixtures shared by every test layer: one store per test, for each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Under CI=true a skip that is not "not applicable" (or a soak scenario) is a failure.
from tests.support.missing import pytest_make_collect_report as pytest_make_collect_report
from tests.support.missing import pytest_runtest_makereport as pytest_runtest_makereport
from tests.support.servers import BACKENDS, provider
from workclaim import Queue, Settings
from workclaim.retry import Backoff


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--soak`: also run the long fault scenarios (tests/faults, marked `soak`)."""
    parser.addoption("--soak", action="store_true", help="also run the soak fault scenarios")


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each backend in turn."""
    return str(request.param)


@pytest.fixture
def store_url(backend_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL naming a store isolated for this test (file, schema or key prefix)."""
    return provider(backend_name)(request, tmp_path)


@pytest.fixture
def settings() -> Settings:
    """Settings with deterministic backoff, so retry times can be asserted."""
    return Settings(backoff=Backoff(base=10.0, factor=2.0, cap=1_000.0, jitter=0.0))


@pytest.fixture
def queue(store_url: str, settings: Settings) -> Iterator[Queue]:
    """A Queue on this test's store."""
    q = Queue(store_url, settings=settings)
    try:
        yield q
    finally:
        q.close()
