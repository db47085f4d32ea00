"""Translation of psycopg errors into the workclaim error tree, by class and SQLSTATE only."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolClosed, PoolTimeout

from workclaim.errors import BackendError, BackendUnavailable, SchemaMismatch

# SQLSTATE classes meaning "the server cannot serve this now; retrying later may work":
# 08 connection exception, 53 insufficient resources, 57 operator intervention (admin shutdown,
# statement timeout), 40 transaction rollback (serialization failure, deadlock), 58 system error.
_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "40", "58"})


def translate(exc: Exception) -> BackendError:
    """A driver error as a workclaim error; the caller raises it `from exc`."""
    if isinstance(exc, PoolTimeout):
        return BackendUnavailable(
            f"no PostgreSQL connection within the deadline ({exc}); is the server up? retry later"
        )
    if isinstance(exc, PoolClosed):
        return BackendUnavailable("this queue is closed")
    if isinstance(exc, pg_errors.UndefinedTable | pg_errors.InvalidSchemaName):
        return SchemaMismatch(
            f"no workclaim store here (a typo in ?schema=?): the workclaim tables are missing "
            f"({exc.sqlstate}: {exc}); to create them, run `workclaim migrate` or open the "
            "Queue with auto_migrate on"
        )
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return BackendError(
            f"the database role lacks a privilege workclaim needs ({exc}); grant it, or run "
            "`workclaim migrate` as the schema owner"
        )
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, psycopg.OperationalError) or (
        sqlstate is not None and sqlstate[:2] in _UNAVAILABLE_CLASSES
    ):
        return BackendUnavailable(f"PostgreSQL is unavailable or timed out ({exc}); retry later")
    return BackendError(f"PostgreSQL error {sqlstate or ''}: {exc}".replace("  ", " "))
