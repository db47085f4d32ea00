"""What a test does when something it needs is missing: a server, a binary, an optional package.

One rule for the whole suite: locally the test skips with one line of reason; under `CI=true` it
fails, so CI cannot pass without running every test. A test that does not apply (say, a step
that only SQLite has) skips with `pytest.skip("not applicable: ...")` instead; that is no
missing part.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


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
