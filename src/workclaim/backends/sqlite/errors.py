"""Translation of sqlite3 errors into the workclaim error tree, by error code only."""

from __future__ import annotations

import sqlite3

from workclaim.errors import BackendError, BackendUnavailable, StorageFailed

_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def translate(exc: sqlite3.Error) -> BackendError:
    """A driver error as a workclaim error (by error code, never by message text); the caller
    raises it `from exc`."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _BUSY_CODES:
        return BackendUnavailable(
            f"the SQLite database stayed locked past busy_timeout ({exc}); retry later"
        )
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return BackendError(
            f"the disk holding the SQLite database is full ({exc}); nothing was written"
        )
    if code is not None and code & 0xFF == sqlite3.SQLITE_IOERR:
        return StorageFailed(
            f"the disk failed an I/O on the SQLite database ({exc}); the change may or may not "
            "be on disk, and this queue refuses further calls: open a new one once the disk is "
            "healthy"
        )
    if code is not None and code & 0xFF == sqlite3.SQLITE_CANTOPEN:
        return BackendUnavailable(f"cannot open the SQLite database ({exc})")
    return BackendError(f"SQLite error: {exc}")
