"""PostgreSQL durability, checked when a queue opens: a session with `synchronous_commit = off`
(from the URL or the database's own setting) or a server with `fsync = off` is refused under
`strict_durability` and logged once otherwise.

The shared server runs with the durable defaults, so `synchronous_commit = off` comes from the
URL's options or from a database this test creates (and drops); `fsync = off` is server-wide, so
it is set on a throwaway server of its own.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.support import pgserver
from tests.support.servers import postgres_base, postgres_url, unavailable, with_query
from workclaim import ConfigError, Queue, Settings
from workclaim.backends.postgres.connection import parse_url

STRICT = Settings(strict_durability=True)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "workclaim"]


def _admin(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection to the database of `url`, as the test's superuser."""
    return psycopg.connect(parse_url(url)[0], autocommit=True, connect_timeout=5)


def _in_database(url: str, database: str) -> str:
    """`url` pointing at another database of the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture
def lax_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a database of this test's own whose sessions run synchronous_commit off."""
    base = postgres_base(request)
    name = f"wc_lax_{secrets.token_hex(4)}"
    with _admin(base) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name))
        )
    try:
        yield _in_database(base, name)
    finally:
        with _admin(base) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_the_durable_defaults_pass_the_strict_check(
    request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_url(request, tmp_path)
    with caplog.at_level(logging.WARNING, logger="workclaim"), Queue(url, settings=STRICT) as q:
        q.enqueue("jobs", 1)
    assert _warnings(caplog) == []


def test_synchronous_commit_off_in_the_url_is_refused_when_strict(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = with_query(postgres_url(request, tmp_path), options="-c synchronous_commit=off")
    with pytest.raises(ConfigError, match=r"strict_durability.*synchronous_commit is off"):
        Queue(url, settings=STRICT)


def test_synchronous_commit_off_for_the_database_is_refused_or_logged_once(
    lax_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The setting comes from `ALTER DATABASE ... SET`, not the URL: read from the session."""
    with pytest.raises(ConfigError, match="synchronous_commit is off"):
        Queue(lax_database, settings=STRICT)
    with caplog.at_level(logging.WARNING, logger="workclaim"):
        for _ in range(2):  # two opens, one warning
            with Queue(lax_database) as q:
                q.enqueue("jobs", 1)
    [warning] = _warnings(caplog)
    assert "synchronous_commit is off" in warning and "fsync is off" not in warning


@pytest.fixture(scope="module")
def unsynced_server() -> Iterator[str]:
    """The URL of a throwaway server running with fsync off."""
    bindir = pgserver.binaries()
    if bindir is None:
        unavailable("no PostgreSQL binaries to start a throwaway server with fsync off")
    assert bindir is not None
    server = pgserver.PgServer.create(bindir)
    try:
        with _admin(server.url) as conn:
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30  # new sessions see the reload once the server did it
        while time.monotonic() < deadline:
            with _admin(server.url) as conn:
                row = conn.execute("SHOW fsync").fetchone()
            if row is not None and row[0] == "off":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the throwaway server never reloaded fsync = off")
        yield server.url
    finally:
        server.destroy()


@pytest.mark.timeout(120)
def test_fsync_off_is_refused_when_strict_and_logged_otherwise(
    unsynced_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="fsync is off"):
        Queue(unsynced_server, settings=STRICT)
    with caplog.at_level(logging.WARNING, logger="workclaim"), Queue(unsynced_server) as q:
        q.enqueue("jobs", 1)
    assert any("fsync is off" in warning for warning in _warnings(caplog))
