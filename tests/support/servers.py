"""Where each backend's test store lives, and what a test does when it is missing.

Each backend has a provider: a function from (test id, tmp_path) to a URL that isolates that
test (its own SQLite file, PostgreSQL schema or Redis key prefix). A provider that cannot reach
its server skips with one line of reason; under CI=true that skip becomes a failure, so CI proves
every backend on every change.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

# The backends the contract suite runs on; a new backend is done when the suite passes on it.
BACKENDS: list[str] = ["sqlite", "redis"]

# (the requesting test, its tmp_path) -> URL; a provider may add finalizers to clean up.
Provider = Callable[[pytest.FixtureRequest, Path], str]


def in_ci() -> bool:
    """True when running under CI, where a missing backend is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip the test (locally) or fail it (CI) because a backend cannot be reached."""
    if in_ci():
        pytest.fail(f"backend unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def slug(test_id: str) -> str:
    """A short identifier made from a test id, safe in schema names and key prefixes."""
    return re.sub(r"[^a-z0-9]+", "_", test_id.lower()).strip("_")[-40:]


def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file under the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'workclaim.db'}"


def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared test Redis (WORKCLAIM_TEST_REDIS_URL, default db 15, or a throwaway server) with
    a key prefix of this test's own, whose keys are deleted afterwards."""
    from tests.support.redisserver import delete_prefix, session_redis_url

    base, why = session_redis_url()
    if base is None:
        unavailable(why)
        raise AssertionError("unreachable")
    prefix = f"wc:{slug(request.node.nodeid)}:{secrets.token_hex(4)}"
    request.addfinalizer(lambda: delete_prefix(base, prefix))
    return f"{base}{'&' if '?' in base else '?'}prefix={prefix}"


def provider(name: str) -> Provider:
    """The URL provider for a backend by name."""
    if name == "sqlite":
        return sqlite_url
    if name == "redis":
        return redis_url
    raise ValueError(f"unknown backend {name!r}")
