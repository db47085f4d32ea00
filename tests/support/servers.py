"""Where each backend's test store lives, and what a test does when it is missing.

Each backend has a provider: a function from (test id, tmp_path) to a URL that isolates that
test (its own SQLite file, PostgreSQL schema or Redis key prefix). A provider that cannot reach
its server calls `unavailable` (tests/support/missing.py): a skip with one line of reason, which
under CI=true becomes a failure, so CI proves every backend on every change.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from tests.support.missing import in_ci as in_ci
from tests.support.missing import unavailable as unavailable

# The backends the contract suite runs on; a new backend is done when the suite passes on it.
# `postgres-pgbouncer`: PostgreSQL through PgBouncer in transaction mode (support/pgbouncer.py).
BACKENDS: list[str] = ["sqlite", "postgres", "postgres-pgbouncer", "redis", "mariadb"]

# (the requesting test, its tmp_path) -> URL; a provider may add finalizers to clean up.
Provider = Callable[[pytest.FixtureRequest, Path], str]


def slug(test_id: str) -> str:
    """A short identifier made from a test id, safe in schema names and key prefixes."""
    return re.sub(r"[^a-z0-9]+", "_", test_id.lower()).strip("_")[-40:]


def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file under the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'workclaim.db'}"


DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
# The session's PostgreSQL: (base URL, None) once reachable, or (None, reason it is not).
_postgres: tuple[str | None, str | None] | None = None


def with_query(url: str, **options: str) -> str:
    """`url` with query-string options added (replacing ones of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in options]
    return urlunsplit(parts._replace(query=urlencode([*query, *options.items()], quote_via=quote)))


def postgres_session(config: pytest.Config) -> tuple[str | None, str]:
    """(the session's PostgreSQL URL, or None; why not): WORKCLAIM_TEST_POSTGRES_URL if it
    answers, else a throwaway server (started once per session, if the binaries are installed)."""
    global _postgres
    if _postgres is None:
        from tests.support import pgserver

        _postgres = pgserver.session_server(
            os.environ.get("WORKCLAIM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL), config
        )
    url, reason = _postgres
    return url, "" if url is not None else reason or "PostgreSQL is not available"


def postgres_base(request: pytest.FixtureRequest) -> str:
    """The session's PostgreSQL URL, or `unavailable` when there is none."""
    url, why = postgres_session(request.config)
    if url is None:
        unavailable(why)
    return url


def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The session's PostgreSQL with a schema of this test's own, dropped after the test."""
    from tests.support import pgserver

    base = postgres_base(request)
    schema = f"wc_{slug(request.node.nodeid)[-30:].strip('_')}_{secrets.token_hex(4)}"
    request.addfinalizer(lambda: pgserver.drop_schema(base, schema))
    return with_query(base, schema=schema)


def pgbouncer_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A schema of this test's own (as `postgres_url`) reached through the session's PgBouncer
    in transaction mode, with the server itself as `direct_url` (LISTEN, migrations)."""
    from tests.support.pgbouncer import session_pgbouncer

    direct = postgres_url(request, tmp_path)
    schema = dict(parse_qsl(urlsplit(direct).query))["schema"]
    base = postgres_base(request)
    bouncer = session_pgbouncer(base, request.config)
    return with_query(bouncer.url(), schema=schema, pgbouncer="transaction", direct_url=base)


def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared test Redis (WORKCLAIM_TEST_REDIS_URL, default db 15, or a throwaway server) with
    a key prefix of this test's own, whose keys are deleted afterwards."""
    from tests.support.redisserver import delete_prefix, session_redis_url

    base, why = session_redis_url()
    if base is None:
        unavailable(why)
    prefix = f"wc:{slug(request.node.nodeid)}:{secrets.token_hex(4)}"
    request.addfinalizer(lambda: delete_prefix(base, prefix))
    return f"{base}{'&' if '?' in base else '?'}prefix={prefix}"


DEFAULT_MARIADB_URL = "mariadb://root@127.0.0.1:3306/test"
# The session's MariaDB server URL once it answered, or the reason it does not.
_mariadb: tuple[str | None, str] | None = None


def mariadb_server() -> tuple[str | None, str]:
    """(the test MariaDB's URL, or None; why not): WORKCLAIM_TEST_MARIADB_URL (default
    root@127.0.0.1:3306/test), checked once per session."""
    global _mariadb
    if _mariadb is None:
        from tests.support import mariadbserver

        url = os.environ.get("WORKCLAIM_TEST_MARIADB_URL", DEFAULT_MARIADB_URL)
        _mariadb = mariadbserver.check(url)
    return _mariadb


def mariadb_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own on the test MariaDB (`wc_<slug>_<hex>`), dropped after
    the test."""
    from tests.support import mariadbserver

    base, why = mariadb_server()
    if base is None:
        unavailable(why)
    name = f"wc_{slug(request.node.nodeid)[-40:].strip('_')}_{secrets.token_hex(4)}"
    mariadbserver.create_database(base, name)
    request.addfinalizer(lambda: mariadbserver.drop_database(base, name))
    return mariadbserver.with_database(base, name)


def provider(name: str) -> Provider:
    """The URL provider for a backend by name."""
    if name == "sqlite":
        return sqlite_url
    if name == "postgres":
        return postgres_url
    if name == "postgres-pgbouncer":
        return pgbouncer_url
    if name == "redis":
        return redis_url
    if name == "mariadb":
        return mariadb_url
    raise ValueError(f"unknown backend {name!r}")
