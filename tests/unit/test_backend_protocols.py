"""Every backend meets each group of the Backend protocol; only PostgreSQL and MariaDB enqueue in
a caller's transaction. mypy checks the same statically (the `_conforms` functions below and in each
backend module); this test checks it at run time, as `Queue` does with `isinstance`."""

from __future__ import annotations

import pytest

from workclaim.backends import (
    Administration,
    Backend,
    Inspection,
    Leasing,
    Lifecycle,
    Scheduling,
    TransactionalEnqueue,
)
from workclaim.backends.mariadb.backend import MariadbBackend
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.redis.backend import RedisBackend
from workclaim.backends.sqlite.backend import SqliteBackend

GROUPS = (Leasing, Inspection, Administration, Scheduling, Lifecycle)
BACKENDS = (SqliteBackend, PostgresBackend, RedisBackend, MariadbBackend)


def _verbs(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def test_the_groups_split_the_verbs_without_overlap() -> None:
    verbs = [_verbs(group) for group in GROUPS]
    assert sum(len(v) for v in verbs) == len(set().union(*verbs)) == 30
    assert _verbs(Backend) == set()  # Backend adds nothing: it is the five groups


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda cls: cls.__name__)
def test_every_backend_meets_every_group(backend: type) -> None:
    for protocol in (*GROUPS, Backend):
        assert issubclass(backend, protocol), protocol.__name__


def test_only_postgres_and_mariadb_enqueue_in_a_callers_transaction() -> None:
    assert issubclass(PostgresBackend, TransactionalEnqueue)
    assert issubclass(MariadbBackend, TransactionalEnqueue)
    assert not issubclass(SqliteBackend, TransactionalEnqueue)
    assert not issubclass(RedisBackend, TransactionalEnqueue)


def _conforms(
    sqlite: SqliteBackend, postgres: PostgresBackend, redis: RedisBackend, mariadb: MariadbBackend
) -> tuple[Backend, Backend, Backend, Backend, TransactionalEnqueue, TransactionalEnqueue]:
    """mypy checks here that each backend meets `Backend` (so each group) and PostgreSQL and
    MariaDB also `TransactionalEnqueue`."""
    return sqlite, postgres, redis, mariadb, postgres, mariadb
