"""A MariaDB database of the bench's own per row: its URL, a connection to it, create and drop.

MariaDB has no schemas inside a database (a schema *is* a database), so where a PostgreSQL row
gets a schema of its own, a MariaDB row gets a database named after its tag, dropped when the
row ends; nothing else on the server is touched.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from workclaim.errors import BackendUnavailable

CONNECT_TIMEOUT = 5


def database_name(tag: str) -> str:
    """A database name from a bench tag: lower-case letters, digits and `_` only."""
    return re.sub(r"[^a-z0-9_]", "_", tag.lower())[:60]


def with_database(url: str, database: str) -> str:
    """`url` pointing at `database` instead of its own (its query options kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def connect(url: str, *, database: bool = True) -> Any:
    """An autocommit MySQLdb connection for `url` (to its database, or to none)."""
    import MySQLdb

    parts = urlsplit(url)
    kwargs: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "connect_timeout": CONNECT_TIMEOUT,
        "autocommit": True,
    }
    name = unquote(parts.path.lstrip("/"))
    if database and name:
        kwargs["database"] = name
    try:
        return MySQLdb.connect(**kwargs)
    except MySQLdb.OperationalError as exc:
        raise BackendUnavailable(f"cannot reach MariaDB: {exc}") from exc


def create_database(url: str, database: str) -> None:
    """Create `database` on `url`'s server if it is missing."""
    conn = connect(url, database=False)
    try:
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{database_name(database)}`")
    finally:
        conn.close()


def drop_database(url: str, database: str) -> None:
    """Drop `database` (one of the bench's own) from `url`'s server."""
    conn = connect(url, database=False)
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{database_name(database)}`")
    finally:
        conn.close()
