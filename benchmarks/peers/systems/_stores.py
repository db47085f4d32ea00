"""Isolation helpers: a PostgreSQL schema or MariaDB database per run, Redis cleanup, SQLite
files in a temp dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit


def pg_schema(run_id: str, system: str) -> str:
    return f"peers_{system}_{run_id}".replace("-", "_").lower()


def pg_create_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def pg_drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def with_query(url: str, **params: Any) -> str:
    """`url` with these query parameters added."""
    parts = urlsplit(url)
    extra = urlencode({k: v for k, v in params.items()}, quote_via=quote)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def pg_libpq_search_path(url: str, schema: str) -> str:
    """A libpq URL whose sessions use `schema` first (for peers that follow search_path)."""
    return with_query(url, options=f"-c search_path={schema}")


def mariadb_database(run_id: str, system: str) -> str:
    return f"peers_{system}_{run_id}".replace("-", "_").lower()


def mariadb_url(url: str, database: str) -> str:
    """`url` pointing at `database` (its query options kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _mariadb_admin(url: str, statement: str) -> None:
    import MySQLdb

    parts = urlsplit(url)
    conn = MySQLdb.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
    )
    try:
        conn.cursor().execute(statement)
    finally:
        conn.close()


def mariadb_create_database(url: str, database: str) -> None:
    _mariadb_admin(url, f"CREATE DATABASE IF NOT EXISTS `{database}`")


def mariadb_drop_database(url: str, database: str) -> None:
    _mariadb_admin(url, f"DROP DATABASE IF EXISTS `{database}`")


def redis_cleanup(env: dict[str, Any], prefix: str | None) -> None:
    """Empty our own throwaway server; on a server given by URL delete only our keys."""
    import redis

    client = redis.Redis.from_url(env["redis_url"])
    try:
        if env.get("redis_own"):
            client.flushall()
        elif prefix:
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
    finally:
        client.close()


def sqlite_path(env: dict[str, Any], run_id: str, system: str) -> Path:
    return Path(env["sqlite_dir"]) / f"{system}-{run_id}.db"


def sqlite_remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
