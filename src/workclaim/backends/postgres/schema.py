"""One workclaim schema in a PostgreSQL database: its version (the `schema_migrations` table)
and the migrations in `migrations/` that build it, applied under an advisory lock."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from workclaim.backends._queryfile import list_files, load_text
from workclaim.errors import SchemaMismatch

PACKAGE = "workclaim.backends.postgres"
MIGRATIONS = [
    (int(name.split("_", 1)[0]), name) for name in list_files(PACKAGE, "migrations", ".sql")
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


class Schema:
    """The schema named `name`, read and migrated with the backend's queries `q` (queries.sql
    with the schema name filled in)."""

    def __init__(self, name: str, q: dict[str, str]) -> None:
        self.name = name
        self._q = q
        self._ident = sql.Identifier(name)

    def version(self, conn: psycopg.Connection[Any]) -> int | None:
        """The schema's version: None when it has no migrations table yet."""
        table = sql.Identifier(self.name, "schema_migrations").as_string(None)
        exists = conn.execute(self._q["migrations_exist"], {"table": table}).fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute(self._q["max_version"]).fetchone()
        return int(row[0]) if row else 0

    def migration_sql(self, name: str) -> str:
        """A migration file with the schema name filled in."""
        text = load_text(PACKAGE, f"migrations/{name}")
        return sql.SQL(text).format(schema=self._ident).as_string(None)

    def migrate(self, conn: psycopg.Connection[Any], target: int, *, analyze: bool = True) -> None:
        """Apply the migrations up to `target` under an advisory lock (one migrator per schema
        at a time, so many processes starting together are safe), each recorded with its
        version in `schema_migrations`, all in one transaction; then (with `analyze`, when
        `target` is this version, whose tables the ANALYZE names) ANALYZE the tables, so that a
        server without autovacuum has statistics from the start."""
        if self.version(conn) == target:
            return  # the common case: nothing to do, no lock, no DDL
        self._apply(conn, target)
        if analyze and target == SCHEMA_VERSION:
            self.analyze(conn)

    def analyze(self, conn: psycopg.Connection[Any]) -> None:
        """ANALYZE every workclaim table: a sample of fixed size per table (300 x
        `default_statistics_target` rows), so the cost does not grow with the table. Outside
        the migration's transaction: it blocks no reader or writer, and holds no lock long."""
        conn.execute(self._q["analyze"])

    def _apply(self, conn: psycopg.Connection[Any], target: int) -> None:
        with conn.transaction():
            conn.execute(self._q["migration_lock"], {"schema": self.name})
            conn.execute(self._q["create_schema"])
            conn.execute(self._q["migrations_table"])
            row = conn.execute(self._q["max_version"]).fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"schema {self.name!r} is at version {current}, newer than this "
                    f"workclaim understands ({SCHEMA_VERSION}); upgrade workclaim"
                )
            for version, name in MIGRATIONS:
                if current < version <= target:
                    conn.execute(self.migration_sql(name))
                    conn.execute(self._q["record_migration"], {"version": version, "name": name})

    def verify(self, current: int | None) -> None:
        """`SchemaMismatch` unless `current` (from `version`) is this version's schema."""
        if current is None:
            raise SchemaMismatch(
                f"no workclaim store here: schema {self.name!r} has no workclaim tables (a typo "
                "in ?schema=?); to create one, run `workclaim migrate`"
            )
        if current != SCHEMA_VERSION:
            found = f"at version {current}"
            raise SchemaMismatch(
                f"schema {self.name!r} is {found}; this workclaim needs version "
                f"{SCHEMA_VERSION}: run `workclaim migrate`"
            )
