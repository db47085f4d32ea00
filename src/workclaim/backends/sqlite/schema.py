"""The SQLite schema: its version (`PRAGMA user_version`) and the migrations that build it,
one file each in `migrations/`, applied in order inside the caller's write transaction."""

from __future__ import annotations

import sqlite3

from workclaim.backends._queryfile import list_files, load_text
from workclaim.errors import SchemaMismatch

PACKAGE = "workclaim.backends.sqlite"
MIGRATIONS = [
    (int(name.split("_", 1)[0]), name) for name in list_files(PACKAGE, "migrations", ".sql")
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def version(conn: sqlite3.Connection) -> int:
    """The database's schema version (0: none yet)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations the database lacks; `SchemaMismatch` if it is newer than ours."""
    current = version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database's schema is version {current}, newer than this workclaim "
            f"understands ({SCHEMA_VERSION}); upgrade workclaim"
        )
    for number, name in MIGRATIONS:
        if number > current:
            for statement in split_statements(load_text(PACKAGE, f"migrations/{name}")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


def verify(current: int) -> None:
    """`SchemaMismatch` unless `current` is this version's schema."""
    if current != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database's schema is version {current}, this workclaim needs "
            f"{SCHEMA_VERSION}: run `workclaim migrate`"
        )


def split_statements(script: str) -> list[str]:
    """Split a migration into complete statements (sqlite3.complete_statement decides)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if statement and not all(
                part.strip().startswith("--") or not part.strip() for part in statement.splitlines()
            ):
                statements.append(statement)
            buffer = ""
    return statements
