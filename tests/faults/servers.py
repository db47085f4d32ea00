"""Throwaway servers for the fault scenarios that crash, restart or cut off a server; never the
shared ones. The binaries come with the PostgreSQL, Redis and MariaDB server packages
(.ci/services.sh)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import pgserver
from tests.support.missing import require, unavailable


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Any]:
    """A PostgreSQL cluster of this module's own, on a free port."""
    bindir = pgserver.binaries()
    if bindir is None:
        unavailable("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    server = pgserver.PgServer.create(bindir)
    try:
        yield server
    finally:
        server.destroy()


def pg_schema_url(base: str) -> str:
    """`base` with a fresh schema of its own."""
    return f"{base}{'&' if '?' in base else '?'}schema=wcf_{secrets.token_hex(4)}"


def proxied(url: str, port: int) -> str:
    """`url` with its 127.0.0.1:<port> replaced by the proxy's port."""
    head, _, rest = url.partition("127.0.0.1:")
    tail = rest[rest.index("/") :] if "/" in rest else ""
    return f"{head}127.0.0.1:{port}{tail}"


def redis_server(options: dict[str, str]) -> Any:
    """A started throwaway `redis-server` with these settings (the caller closes it)."""
    redisserver = require("tests.support.redisserver", "throwaway Redis needs the `redis` extra")
    if redisserver.redis_server_binary() is None:
        unavailable("redis-server is not installed")
    return redisserver.RedisServer(options).start()


def redis_prefixed(url: str) -> str:
    """`url` with a key prefix of its own."""
    return f"{url}{'&' if '?' in url else '?'}prefix=wcf{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def durable_redis() -> Iterator[Any]:
    """A throwaway Redis of this module's own with the durable settings (AOF, fsync always)."""
    server = redis_server({"appendonly": "yes", "appendfsync": "always"})
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def mariadb_server() -> Iterator[Any]:
    """A `mariadbd` of this module's own, on a free port (never the shared one on 3306)."""
    mariadbserver = require("tests.support.mariadbserver", "throwaway MariaDB needs `mariadb`")
    if mariadbserver.binaries() is None:
        unavailable("MariaDB server binaries (mariadbd, mariadb-install-db) are not installed")
    server = mariadbserver.MariadbServer.create()
    try:
        yield server
    finally:
        server.destroy()


FAULT_BACKENDS = ("sqlite", "postgres", "redis", "mariadb")


@pytest.fixture(params=FAULT_BACKENDS)
def fault_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A store isolated for this test on each backend; PostgreSQL, Redis and MariaDB are this
    module's throwaway servers, so storms of killed clients never touch the shared ones."""
    name = str(request.param)
    if name == "sqlite":
        return f"sqlite:///{tmp_path / 'workclaim.db'}"
    if name == "postgres":
        return pg_schema_url(request.getfixturevalue("pg_server").url)
    if name == "mariadb":
        return str(request.getfixturevalue("mariadb_server").database_url())
    return redis_prefixed(request.getfixturevalue("durable_redis").url)
