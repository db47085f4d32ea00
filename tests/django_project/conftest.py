"""The test project, set up once per test process: Django's settings (wcsite.settings) with a
SQLite store and database (`default`) and a PostgreSQL store and database (`pg`), in locations
passed as WCSITE_* variables so that a `manage.py` worker started by a test sees the same."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.missing import require
from tests.support.servers import postgres_base, with_query

PROJECT = Path(__file__).parent


@dataclass(frozen=True)
class Site:
    """Where the test project's stores are, and the environment a worker process needs."""

    sqlite_store: str
    pg_store: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """Django set up for the test project (once per process: Django's settings are global)."""
    require("django", "workclaim[django] is not installed")
    from tests.support import pgserver

    base = postgres_base(request)
    schema = f"wc_django_{secrets.token_hex(4)}"
    tmp = tmp_path_factory.mktemp("django")
    env = {
        "DJANGO_SETTINGS_MODULE": "wcsite.settings",
        "WCSITE_SQLITE_DB": str(tmp / "django.sqlite3"),
        "WCSITE_SQLITE_STORE": f"sqlite:///{tmp / 'workclaim.db'}",
        "WCSITE_PG_DB": base,
        "WCSITE_PG_STORE": with_query(base, schema=schema),
    }
    os.environ.update(env)
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))
    import django

    django.setup()
    try:
        yield Site(env["WCSITE_SQLITE_STORE"], env["WCSITE_PG_STORE"], env)
    finally:
        pgserver.drop_schema(base, schema)
