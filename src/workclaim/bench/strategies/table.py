"""The spike's own table (`bench_actions`) on SQLite, PostgreSQL or MariaDB, and what every
strategy that uses it shares: the candidate read, the fenced completion, item setup and final
state.

Each connection is autocommit: every statement is its own transaction, as in the spike, so the
read and the update of a claim are two steps and races between them are real.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from workclaim._time import now_micros
from workclaim.backends._queryfile import load_queries
from workclaim.bench.strategies import mariadb_db
from workclaim.bench.strategies.base import EMPTY, ClaimResult, Grant, Target, strip_query
from workclaim.errors import BackendUnavailable, ConfigError, LeaseLost

PACKAGE = "workclaim.bench.strategies"
TABLE = load_queries(PACKAGE, "table.sql")
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_SYNCHRONOUS = "FULL"  # workclaim's SQLite default, so the comparison is like for like
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def libpq_url(url: str) -> str:
    """A postgresql URL without workclaim's own query options (schema, pool_size)."""
    return strip_query(url, "schema", "pool_size")


def schema_name(tag: str) -> str:
    """The PostgreSQL schema holding one bench row's table."""
    return re.sub(r"[^a-z0-9_]", "_", tag.lower())[:60]


def dialect_of(url: str) -> str:
    """`postgres`, `mariadb` or `sqlite`: which SQL the bench's queries are written in for `url`."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres"
    if url.startswith(("mariadb://", "mysql://")):
        return "mariadb"
    return "sqlite"


class SqlStore:
    """One autocommit connection to SQLite, PostgreSQL or MariaDB running the bench's named
    queries. On MariaDB `last_id` is the statement's `LAST_INSERT_ID()` (it has no
    `UPDATE ... RETURNING`; the claims return the new version through `LAST_INSERT_ID(expr)`)."""

    def __init__(self, url: str, tag: str) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.last_id = 0
        self._pg: Any = None
        self._my: Any = None
        self._lite: sqlite3.Connection | None = None
        if self.dialect == "mariadb":
            self._my = mariadb_db.connect(
                mariadb_db.with_database(url, mariadb_db.database_name(tag))
            )
        elif self.dialect == "sqlite":
            path = unquote(urlsplit(url).path)[1:]
            if not path or path == ":memory:":
                raise ConfigError("the bench needs a SQLite file shared by processes")
            self._lite = sqlite3.connect(
                path, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
            )
            self._lite.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            self._lite.execute("PRAGMA journal_mode = WAL")
            self._lite.execute(f"PRAGMA synchronous = {SQLITE_SYNCHRONOUS}")
        else:
            import psycopg

            schema = schema_name(tag)
            try:
                self._pg = psycopg.connect(
                    libpq_url(url),
                    autocommit=True,
                    connect_timeout=5,
                    options=f"-c search_path={schema}",
                )
            except psycopg.OperationalError as exc:
                raise BackendUnavailable(f"cannot reach PostgreSQL: {exc}") from exc

    def run(self, sql: str, params: dict[str, Any] | None = None) -> tuple[list[Any], int]:
        """Execute one statement; returns (rows, rowcount)."""
        params = params or {}
        if self._lite is not None:
            try:
                cur = self._lite.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
                return rows, cur.rowcount
            except sqlite3.OperationalError as exc:
                raise BackendUnavailable(f"SQLite: {exc}") from exc
        if self._my is not None:
            return self._run_mariadb(sql, params)
        import psycopg

        try:
            with self._pg.cursor() as cur:
                cur.execute(_PARAM.sub(r"%(\1)s", sql), params)
                rows = cur.fetchall() if cur.description else []
                return rows, int(cur.rowcount)
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(f"PostgreSQL: {exc}") from exc

    def _run_mariadb(self, sql: str, params: dict[str, Any]) -> tuple[list[Any], int]:
        import MySQLdb

        try:
            cur = self._my.cursor()
            try:
                cur.execute(_PARAM.sub(r"%(\1)s", sql), params)
                rows = list(cur.fetchall()) if cur.description else []
                self.last_id = int(cur.lastrowid or 0)
                return rows, int(cur.rowcount)
            finally:
                cur.close()
        except MySQLdb.OperationalError as exc:
            raise BackendUnavailable(f"MariaDB: {exc}") from exc

    def query(self, queries: dict[str, str], name: str) -> str:
        """The `name` query of `queries` in this store's dialect (`<name>_mariadb` on MariaDB
        when the file has one)."""
        return queries.get(f"{name}_{self.dialect}", queries[name])

    def close(self) -> None:
        if self._my is not None:
            self._my.close()
            self._my = None
        if self._lite is not None:
            self._lite.close()
            self._lite = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None


class TableWorker:
    """What the table strategies share; subclasses say how a candidate is taken."""

    supports_leases = False
    name = "table"

    def __init__(self, target: Target) -> None:
        self.target = target
        self.store = SqlStore(target.url, target.tag)
        self.lease = float(target.options.get("lease", 30.0))

    def candidates(self, run: int, limit: int) -> list[tuple[int, int]]:
        rows, _ = self.store.run(TABLE["candidates"], {"run": run, "limit": limit})
        return [(int(r[0]), int(r[1])) for r in rows]

    def empty(self, wait: float) -> ClaimResult:
        if wait > 0:
            time.sleep(min(wait, 0.005))  # an idle worker's poll interval, not synchronisation
        return EMPTY

    def grant(
        self, item_id: int, token: int, worker: str, lease: float | None = None
    ) -> ClaimResult:
        """One item won; the worker's name is the handle its completion is fenced by."""
        return ClaimResult("claimed", [Grant(item_id, token, lease, handle=worker)])

    def claim(self, run: int, *, worker: str, limit: int, lease: float, wait: float) -> ClaimResult:
        raise NotImplementedError

    def complete(self, grant: Grant) -> None:
        params = {"id": grant.item_id, "worker": grant.handle, "token": grant.token}
        _, changed = self.store.run(TABLE["complete"], params)
        if changed == 0:
            raise LeaseLost(grant.item_id, grant.token or 0, "superseded")

    def heartbeat(self, grant: Grant, extend: float) -> Grant:
        raise NotImplementedError(f"{self.name} has no leases to extend")

    def release(self, grant: Grant) -> None:
        raise NotImplementedError(f"{self.name} has no release")

    def held_by_me(self, grant: Grant, worker: str) -> bool:
        rows, _ = self.store.run(TABLE["held_by"], {"id": grant.item_id, "worker": worker})
        return bool(rows)

    def pending(self, run: int) -> int:
        rows, _ = self.store.run(TABLE["pending"], {"run": run})
        return int(rows[0][0])

    def close(self) -> None:
        self.store.close()


def guarded_update(
    store: SqlStore, queries: dict[str, str], item_id: int, worker: str, version: int
) -> int | None:
    """Run a strategy's claiming UPDATE (`claim`: `RETURNING version`; on MariaDB `claim_mariadb`,
    which sets the new version through `LAST_INSERT_ID(expr)`); the new version, or None if the
    update changed no row (it lost)."""
    params = {"id": item_id, "worker": worker, "now": now_micros(), "version": version}
    rows, changed = store.run(store.query(queries, "claim"), params)
    if store.dialect == "mariadb":
        return store.last_id if changed == 1 else None
    return int(rows[0][0]) if rows else None


def shuffled(candidates: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Candidates in random order, so racing workers spread over them."""
    random.shuffle(candidates)
    return candidates


class TableAdmin:
    """The coordinator's side of the table strategies: schema, items per run, final states."""

    def __init__(self, target: Target) -> None:
        self.target = target
        dialect = dialect_of(target.url)
        if dialect == "postgres":
            self._create_schema(target)
        elif dialect == "mariadb":
            mariadb_db.create_database(target.url, mariadb_db.database_name(target.tag))
        self.store = SqlStore(target.url, target.tag)
        self.store.run(TABLE[f"create_{dialect}"])
        self.store.run(self.store.query(TABLE, "create_index"))

    @staticmethod
    def _create_schema(target: Target) -> None:
        import psycopg

        try:
            with psycopg.connect(libpq_url(target.url), autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema_name(target.tag)}"')
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(f"cannot reach PostgreSQL: {exc}") from exc

    def add_items(self, run: int, count: int) -> list[int]:
        rows, _ = self.store.run(
            self.store.query(TABLE, "insert_items"), {"run": run, "count": count}
        )
        return sorted(int(r[0]) for r in rows)

    def final_state(self, run: int, ids: Sequence[int]) -> dict[int, str]:
        rows, _ = self.store.run(TABLE["final_state"], {"run": run})
        return {int(r[0]): "done" if r[1] else "not done" for r in rows}

    def settings(self) -> dict[str, Any]:
        if self.store.dialect == "sqlite":
            return {
                "store": "sqlite3 autocommit",
                "journal_mode": "wal",
                "synchronous": SQLITE_SYNCHRONOUS,
                "busy_timeout_ms": SQLITE_BUSY_TIMEOUT_MS,
            }
        if self.store.dialect == "mariadb":
            return {
                "store": "MySQLdb autocommit",
                "database": mariadb_db.database_name(self.target.tag),
            }
        return {"store": "psycopg autocommit", "schema": schema_name(self.target.tag)}

    def close(self) -> None:
        self.store.close()
        if self.store.dialect == "mariadb":
            mariadb_db.drop_database(self.target.url, mariadb_db.database_name(self.target.tag))
        if self.store.dialect == "postgres":
            import psycopg

            with psycopg.connect(
                libpq_url(self.target.url), autocommit=True, connect_timeout=5
            ) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name(self.target.tag)}" CASCADE')


def sqlite_path(url: str) -> Path:
    """The file of a sqlite:/// URL."""
    return Path(unquote(urlsplit(url).path)[1:])
