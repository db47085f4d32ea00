"""Translation of MySQLdb (mysqlclient) errors into the workclaim error tree, by error number
only (never by message text)."""

from __future__ import annotations

import MySQLdb

from workclaim.errors import BackendError, BackendUnavailable, ConfigError, SchemaMismatch

# The client lost or could not reach the server: 2002 no socket, 2003 cannot connect, 2005 unknown
# host, 2006 server gone away, 2013 lost connection during a query, 2055 lost at reading.
CONNECTION_LOST = frozenset({2002, 2003, 2005, 2006, 2013, 2055})
# The transaction was rolled back whole and may simply run again: 1213 deadlock. (A lock wait
# timeout, 1205, is not run again: the call's deadline has passed; it is BackendUnavailable.)
RETRYABLE = frozenset({1213})
LOCK_WAIT_TIMEOUT = 1205
# The server cannot serve this now: 1040 too many connections, 1053 shutdown in progress,
# 1927 connection killed, 1969 max_statement_time exceeded, 4031 idle session timed out, 1205
# lock wait timeout.
_BUSY = frozenset({1040, 1053, 1927, 1969, 4031, LOCK_WAIT_TIMEOUT})
_NO_TABLE = frozenset({1146})
_BAD_DATABASE = 1049
_ACCESS_DENIED = frozenset({1044, 1045, 1698})
_PRIVILEGE = frozenset({1142, 1143, 1227, 1370})


def code_of(exc: BaseException) -> int | None:
    """The server's (or client library's) error number of a MySQLdb error, if any."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def translate(exc: MySQLdb.MySQLError) -> BackendError | ConfigError:
    """A driver error as a workclaim error; the caller raises it `from exc`."""
    code = code_of(exc)
    if code in CONNECTION_LOST or code in _BUSY:
        return BackendUnavailable(f"MariaDB is unavailable or timed out ({exc}); retry later")
    if code in RETRYABLE:
        return BackendUnavailable(
            f"MariaDB kept rolling the transaction back ({exc}), also after retries; retry later"
        )
    if code in _NO_TABLE:
        return SchemaMismatch(
            f"no workclaim store here: the workclaim tables are missing ({exc}); to create "
            "them, run `workclaim migrate` or open the Queue with auto_migrate on"
        )
    if code == _BAD_DATABASE:
        return ConfigError(
            f"MariaDB has no such database ({exc}); check the URL's database name (workclaim "
            "creates its tables, not the database)"
        )
    if code in _ACCESS_DENIED:
        return ConfigError(f"MariaDB refused the URL's user or password ({exc})")
    if code in _PRIVILEGE:
        return BackendError(
            f"the MariaDB user lacks a privilege workclaim needs ({exc}); grant it, or run "
            "`workclaim migrate` as a user that may create tables, triggers and sequences"
        )
    if isinstance(exc, MySQLdb.OperationalError) and code is not None and code >= 2000:
        return BackendUnavailable(f"MariaDB client error ({exc}); retry later")
    return BackendError(f"MariaDB error {code or ''}: {exc}".replace("  ", " "))
