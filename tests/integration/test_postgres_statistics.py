"""PostgreSQL statistics kept current by workclaim itself, for servers where autovacuum is off
(issue 18): an ANALYZE after migrations, and from purge once many rows changed."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from psycopg import sql

from tests.integration._pg import connect
from tests.support.servers import postgres_url
from workclaim import Queue, Settings
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.postgres.schema import SCHEMA_VERSION

TABLES = ("items", "history", "finished_counts", "groups", "policies", "claim_log")


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


def last_analyze(url: str, schema: str) -> dict[str, datetime | None]:
    """Each table's last ANALYZE (manual), as the server's statistics record it."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE schemaname = %s",
            (schema,),
        ).fetchall()
    return dict(rows)


def test_migrate_leaves_every_table_analyzed(url: str) -> None:
    with Queue(url) as q:
        schema = q.backend.schema  # type: ignore[attr-defined]
    analyzed = last_analyze(url, schema)
    assert set(TABLES) <= set(analyzed)
    assert all(analyzed[t] is not None for t in TABLES), analyzed


def test_purge_analyzes_once_many_rows_changed(url: str) -> None:
    backend = PostgresBackend(url, Settings(auto_migrate=False))
    try:
        backend.migrate_to(SCHEMA_VERSION, analyze=False)
        ident = sql.Identifier(backend.schema)
        with connect(url) as conn:
            conn.execute(
                sql.SQL(
                    """INSERT INTO {}.items (queue, payload, status, priority, run_at,
                           max_attempts, created_at, updated_at, finished_at)
                       SELECT 'q', '{{}}', 'done', 0, now(), 1, now(), now(),
                              now() - interval '1 day'
                       FROM generate_series(1, 20000)"""
                ).format(ident)
            )
            conn.commit()
            conn.execute("SELECT pg_stat_force_next_flush()")  # the counts, now
            conn.commit()
        assert last_analyze(url, backend.schema)["items"] is None

        # Nothing purged: no ANALYZE, however much changed.
        assert backend.purge("q", older_than_seconds=7 * 86400) == 0
        assert last_analyze(url, backend.schema)["items"] is None
        # 100 rows purged, after 20,000 inserted since the last (never) ANALYZE.
        assert backend.purge("q", older_than_seconds=3600, limit=100) == 100
        assert last_analyze(url, backend.schema)["items"] is not None
    finally:
        backend.close()
