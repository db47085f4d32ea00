"""The test MariaDB: whether it answers, and a database of each test's own on it.

Tests talk to the server with MySQLdb directly (root, by default without a password), never
through workclaim, so a broken backend cannot hide a broken fixture.
"""

from __future__ import annotations

from contextlib import closing
from urllib.parse import unquote, urlsplit

import MySQLdb
from MySQLdb.connections import Connection


def _connect(url: str) -> Connection:
    parts = urlsplit(url)
    return MySQLdb.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        connect_timeout=5,
        autocommit=True,
    )


def check(url: str) -> tuple[str | None, str]:
    """(url, "") when the server answers, else (None, why not)."""
    try:
        with closing(_connect(url)) as conn:
            conn.ping()
    except MySQLdb.MySQLError as exc:
        return None, f"MariaDB is not available at {urlsplit(url).netloc} ({exc})"
    return url, ""


def with_database(url: str, name: str) -> str:
    """`url` naming database `name` instead of its own."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def create_database(url: str, name: str) -> None:
    """Create the (new, empty) database `name`."""
    with closing(_connect(url)) as conn, closing(conn.cursor()) as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")


def drop_database(url: str, name: str) -> None:
    """Drop database `name` (after its test; gone already is fine)."""
    with closing(_connect(url)) as conn, closing(conn.cursor()) as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
