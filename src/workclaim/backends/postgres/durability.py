"""What a crash of the PostgreSQL server can lose, read from a new session when a backend opens.

workclaim's promise (committed work survives a crash) needs `fsync = on` (the server flushes
its write-ahead log to disk) and `synchronous_commit` anything but `off` (a commit is flushed
before it is acknowledged; `local`, `remote_write` and `remote_apply` all flush locally first).
`synchronous_commit` can be set per role, per database or in the URL's `options`, so it is read
from the session, as `SHOW` would; `fsync` is server-wide. Read once per backend open, never on
a call. The policy (refuse under `strict_durability`, else warn once) is `backends/durability`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from workclaim.backends.durability import enforce

# One round trip for both; current_setting() is the session's value, exactly what SHOW prints.
SETTINGS_QUERY = "SELECT current_setting('fsync'), current_setting('synchronous_commit')"
FIX = "set fsync = on and synchronous_commit = on (server, role, database and URL options)"


@dataclass(frozen=True, slots=True)
class Durability:
    """The session's crash-safety settings."""

    fsync: bool
    synchronous_commit: str

    def what_a_crash_loses(self) -> str | None:
        """One sentence on what a crash can lose under these settings; None for nothing."""
        losses = []
        if not self.fsync:
            losses.append(
                "fsync is off: a crash of the database host (power loss, OS crash) can lose "
                "acknowledged enqueues, claims and completions and corrupt the database"
            )
        if self.synchronous_commit == "off":
            losses.append(
                "synchronous_commit is off: a crash of the PostgreSQL server can lose the last "
                "acknowledged commits (up to three times wal_writer_delay, 0.6 s by default)"
            )
        return "; and ".join(losses) or None


def read_durability(conn: psycopg.Connection[Any]) -> Durability:
    """The settings of `conn`'s session."""
    row = conn.execute(SETTINGS_QUERY).fetchone()
    assert row is not None
    return Durability(fsync=row[0] == "on", synchronous_commit=str(row[1]))


def check_durability(conn: psycopg.Connection[Any], *, strict: bool) -> None:
    """Refuse (strict) or warn once about a session whose commits a crash could lose."""
    info = conn.info
    store = f"PostgreSQL at {info.host}:{info.port}/{info.dbname} (role {info.user})"
    enforce(store, read_durability(conn).what_a_crash_loses(), fix=FIX, strict=strict)
