"""A `Queue` that cannot start (its schema is missing or newer than this workclaim) raises, and
closes the store connections it opened on the way: nothing is left open behind the error."""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from psycopg import sql

from tests.integration._pg import connect
from tests.support.servers import postgres_url, with_query
from workclaim import Queue, SchemaMismatch, Settings
from workclaim.backends.postgres.connection import parse_url

NEEDS_PROC = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="not applicable: needs /proc (Linux)"
)


def _open_files(db: Path) -> list[str]:
    """This process's open descriptors on the database, its -wal, -shm or writer-gate file."""
    names = {str(db), f"{db}-wal", f"{db}-shm", f"{db}-wclock"}
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        if target in names:
            found.append(target)
    return found


@pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="not applicable: needs /proc (Linux)"
)
def test_a_sqlite_database_with_a_newer_schema_leaves_no_file_open(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with Queue(f"sqlite:///{db}"):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(SchemaMismatch, match="newer") as raised:
        Queue(f"sqlite:///{db}")
    # The error (and its traceback, which holds the Queue) is still alive here, as in a caller
    # that logs or keeps it: the files must be closed anyway, not left to the garbage collector.
    assert raised.value is not None
    assert _open_files(db) == []


@pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="not applicable: needs /proc (Linux)"
)
def test_a_closed_sqlite_queue_leaves_no_file_open_after_writes_from_many_threads(
    tmp_path: Path,
) -> None:
    """Each thread that writes opens its own writer-gate descriptor; `close()` closes them all
    (they used to stay open for the life of the process)."""
    db = tmp_path / "w.db"
    with Queue(f"sqlite:///{db}") as q, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: q.enqueue("jobs", {"n": n}), range(16)))
        assert any(name.endswith("-wclock") for name in _open_files(db))
    assert _open_files(db) == []


def _connections(url: str, application_name: str) -> int:
    """Connections named `application_name`, other than the one asking."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("schema", ["missing, auto-migrate off", "newer"])
def test_a_postgres_schema_mismatch_leaves_no_connection_open(
    request: pytest.FixtureRequest, tmp_path: Path, schema: str
) -> None:
    name = f"wc-open-{secrets.token_hex(4)}"
    url = with_query(postgres_url(request, tmp_path), application_name=name)
    settings = Settings(auto_migrate=False) if schema.startswith("missing") else Settings()
    if schema == "newer":
        Queue(url).close()
        table = sql.Identifier(parse_url(url)[1], "schema_migrations")
        with connect(url) as conn:
            conn.execute(sql.SQL("INSERT INTO {} VALUES (999, 'future')").format(table))
    with pytest.raises(SchemaMismatch) as raised:
        Queue(url, settings=settings)
    assert raised.value is not None  # kept alive, as in a caller that logs or keeps the error
    # A closed connection leaves pg_stat_activity when its server process exits, a moment
    # after the client hung up; the bound only keeps a failing run from hanging.
    deadline = time.monotonic() + 10
    while (left := _connections(url, name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == 0, f"{left} connection(s) of the failed Queue are still open"
