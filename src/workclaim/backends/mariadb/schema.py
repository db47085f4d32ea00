"""The MariaDB schema: its version (the `workclaim_schema_version` table) and the migrations in
`migrations/` that build it, every `NNNN_*.sql` in order, under a named lock.

MariaDB commits each DDL statement at once, so a migration is not one transaction: each file's
statements are written to be safe to run again (see migrations/0001_initial.sql), a file is
recorded only once it ran whole, and `GET_LOCK` lets one migrator at a time run them (many
processes starting together are safe).
"""

from __future__ import annotations

import re

from workclaim.backends._queryfile import list_files, load_text
from workclaim.backends.mariadb.connection import Cursor
from workclaim.errors import BackendUnavailable, SchemaMismatch

PACKAGE = "workclaim.backends.mariadb"
MIGRATIONS = [
    (int(name.split("_", 1)[0]), name) for name in list_files(PACKAGE, "migrations", ".sql")
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
LOCK_SECONDS = 60  # how long a migrator waits for another to finish

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS workclaim_schema_version (
    version     INT          NOT NULL PRIMARY KEY,
    name        VARCHAR(255) NOT NULL,
    applied_at  DATETIME(6)  NOT NULL
) ENGINE = InnoDB
"""
_DELIMITER = re.compile(r"^\s*DELIMITER\s+(\S+)\s*$", re.IGNORECASE)


def version(cur: Cursor) -> int | None:
    """The store's schema version: None when it has no workclaim tables at all."""
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = 'workclaim_schema_version'"
    )
    if not cur.fetchone()[0]:
        return None
    cur.execute("SELECT COALESCE(MAX(version), 0) FROM workclaim_schema_version")
    return int(cur.fetchone()[0])


def migrate(cur: Cursor) -> None:
    """Apply the migrations the store lacks, each recorded once it ran whole; `SchemaMismatch`
    if the store is newer than this workclaim. `cur` is an autocommit session's cursor."""
    if version(cur) == SCHEMA_VERSION:
        return  # the common case: no lock, no DDL
    cur.execute("SELECT GET_LOCK(CONCAT('workclaim_migrate:', DATABASE()), %s)", (LOCK_SECONDS,))
    if cur.fetchone()[0] != 1:
        raise BackendUnavailable(
            f"another process has been migrating this database for {LOCK_SECONDS}s; retry later"
        )
    try:
        cur.execute(_VERSION_TABLE)
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM workclaim_schema_version")
        current = int(cur.fetchone()[0])
        if current > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the database's workclaim schema is version {current}, newer than this "
                f"workclaim understands ({SCHEMA_VERSION}); upgrade workclaim"
            )
        for number, name in MIGRATIONS:
            if number > current:
                for statement in split_statements(load_text(PACKAGE, f"migrations/{name}")):
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO workclaim_schema_version (version, name, applied_at) "
                    "VALUES (%s, %s, UTC_TIMESTAMP(6))",
                    (number, name),
                )
    finally:
        cur.execute("SELECT RELEASE_LOCK(CONCAT('workclaim_migrate:', DATABASE()))")
        cur.fetchall()


def verify(current: int | None, database: str = "") -> None:
    """`SchemaMismatch` unless `current` (from `version`) is this version's schema; `database`
    (the URL's) is named when it has no workclaim tables, as a likely typo."""
    if current is None:
        raise SchemaMismatch(
            f"no workclaim store here: database {database!r} has no workclaim tables (a typo in "
            "the URL's database name?); to create them, run `workclaim migrate` or open the "
            "Queue with auto_migrate on"
        )
    if current > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database's workclaim schema is version {current}, newer than this workclaim "
            f"understands ({SCHEMA_VERSION}); upgrade workclaim"
        )
    if current != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database's workclaim schema is version {current}, this workclaim needs "
            f"{SCHEMA_VERSION}: run `workclaim migrate`"
        )


def split_statements(script: str) -> list[str]:
    """The statements of a migration: each ends with the current delimiter at the end of a line
    (`;`, or what a `DELIMITER x` line sets, as the mariadb client reads scripts); comment-only
    lines between statements are dropped."""
    statements: list[str] = []
    delimiter = ";"
    buffer: list[str] = []
    for line in script.splitlines():
        match = _DELIMITER.match(line)
        if match and not buffer:
            delimiter = match.group(1)
            continue
        if not buffer and (not line.strip() or line.lstrip().startswith("--")):
            continue
        code = _without_comment(line).rstrip()
        if code.endswith(delimiter):  # a comment (whole line or trailing) never ends one
            buffer.append(code[: -len(delimiter)])
            statement = "\n".join(buffer).strip()
            if statement:
                statements.append(statement)
            buffer = []
        else:
            buffer.append(line)
    if "\n".join(buffer).strip():
        raise ValueError(f"a migration ends inside a statement: {buffer[0]!r}")
    return statements


def _without_comment(line: str) -> str:
    """`line` without a `--` comment that starts outside a quoted string."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif line.startswith("--", i):
            return line[:i]
    return line
