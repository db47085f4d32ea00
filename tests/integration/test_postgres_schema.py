"""PostgreSQL schema: versioned migrations, concurrent first use, schemas sharing a database."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.integration._pg import connect
from tests.support.servers import postgres_url, with_query
from workclaim import ConfigError, Queue, SchemaMismatch, Settings
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.postgres.schema import MIGRATIONS, SCHEMA_VERSION

NO_MIGRATE = Settings(auto_migrate=False)


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


def _schema_of(url: str) -> str:
    from workclaim.backends.postgres.connection import parse_url

    return parse_url(url)[1]


def dump_schema(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything that defines the schema's shape, with its name taken out."""
    schema = _schema_of(url)
    queries = {
        "columns": """
            SELECT table_name, column_name, ordinal_position, data_type, is_nullable,
                   column_default, is_identity, identity_generation
            FROM information_schema.columns WHERE table_schema = %(s)s
            ORDER BY table_name, ordinal_position""",
        "indexes": """
            SELECT tablename, indexname, replace(indexdef, %(s)s, 'SCHEMA')
            FROM pg_indexes WHERE schemaname = %(s)s ORDER BY indexname""",
        "constraints": """
            SELECT conrelid::regclass::text <> '', conname, contype,
                   replace(pg_get_constraintdef(c.oid), %(s)s, 'SCHEMA')
            FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE n.nspname = %(s)s ORDER BY conname""",
        "sequences": """
            SELECT sequencename, data_type::text, start_value, increment_by, cache_size, cycle
            FROM pg_sequences WHERE schemaname = %(s)s ORDER BY sequencename""",
        "functions": """
            SELECT p.proname, replace(pg_get_functiondef(p.oid), %(s)s, 'SCHEMA')
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = %(s)s ORDER BY p.proname""",
        "versions": "SELECT version, name FROM {}.schema_migrations ORDER BY version",
    }
    with connect(url) as conn:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for key, query in queries.items():
            text = sql.SQL(query).format(sql.Identifier(schema)) if "{}" in query else query
            out[key] = conn.execute(text, {"s": schema}).fetchall()
        return out


def test_a_fresh_schema_equals_one_migrated_step_by_step(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fresh = postgres_url(request, tmp_path)
    stepped = postgres_url(request, tmp_path)
    Queue(fresh).close()  # all migrations at once, on first use
    backend = PostgresBackend(stepped, Settings())
    try:
        for version, _ in MIGRATIONS:  # one version at a time, as an upgraded install saw them
            backend.migrate_to(version)
            backend.migrate_to(version)  # idempotent
        backend.verify_schema()
    finally:
        backend.close()
    a, b = dump_schema(fresh), dump_schema(stepped)
    assert a == b
    assert a["versions"] == [(v, name) for v, name in MIGRATIONS]
    # The shape the claim relies on is really there.
    indexes = {row[1]: row[2] for row in a["indexes"]}
    assert "WHERE (status = 'queued'::text)" in indexes["items_claimable"]
    assert "(queue, priority, run_at, id)" in indexes["items_claimable"]
    assert {row[0]: row[4] for row in a["sequences"]}["token_seq"] == 1  # CACHE 1
    assert [row[0] for row in a["functions"]] == [
        "claim",
        "claim_floor",
        "claim_flow",
        "complete_and_claim",
        "count_changed",
        "count_inserted",
        "count_lock",
        "floor_period",
        "floors_wanted",
        "lease_floor",
        "raise_floors",
    ]


def test_a_version_2_store_with_items_migrates_with_its_counts(url: str) -> None:
    backend = PostgresBackend(url, Settings())
    try:
        backend.migrate_to(2)
        schema = sql.Identifier(_schema_of(url))
        with connect(url) as conn:  # items as version 2 left them, in every status
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.items (queue, payload, status, priority, run_at, "
                    "max_attempts, created_at, updated_at, finished_at) "
                    "SELECT 'jobs', '1', s, 0, now(), 3, now(), now(), "
                    "CASE WHEN s IN ('done', 'dead', 'cancelled') THEN now() END "
                    "FROM unnest(ARRAY['queued', 'done', 'done', 'dead', 'cancelled']) AS s"
                ).format(schema)
            )
    finally:
        backend.close()
    with Queue(url) as q:  # migrates to the current version on first use
        stats = q.stats("jobs")
        assert (stats.queued, stats.done, stats.dead, stats.cancelled) == (1, 2, 1, 1)
        assert q.queues() == ["jobs"]
        lease = q.claim("jobs", worker="w")[0]
        q.complete(lease)
        assert [str(e.kind) for e in q.history(lease.id)] == ["claimed", "completed"]
        assert q.stats("jobs").done == 3
        assert q.purge("jobs", older_than=0) == 5
        assert q.queues() == []


def _open_queue(url: str, barrier: Barrier) -> None:
    barrier.wait(30)
    Queue(url).close()


@pytest.mark.timeout(120)
def test_many_processes_migrating_at_once_build_one_schema(
    url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(6)
    procs = [ctx.Process(target=_open_queue, args=(url, barrier)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 6
    reference = postgres_url(request, tmp_path)
    Queue(reference).close()
    assert dump_schema(url) == dump_schema(reference)


def test_without_auto_migrate_a_missing_schema_says_to_migrate(url: str) -> None:
    with pytest.raises(SchemaMismatch, match="workclaim migrate"):
        Queue(url, settings=NO_MIGRATE)
    Queue(url).close()
    Queue(url, settings=NO_MIGRATE).close()


def test_a_newer_schema_is_refused(url: str) -> None:
    Queue(url).close()
    with connect(url) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.schema_migrations (version, name) VALUES (%s, 'future')"
            ).format(sql.Identifier(_schema_of(url))),
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(SchemaMismatch, match="newer"):
        Queue(url)
    with pytest.raises(SchemaMismatch, match="workclaim migrate"):
        Queue(url, settings=NO_MIGRATE)


def test_two_schemas_in_one_database_are_separate_queues(
    url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    other = postgres_url(request, tmp_path)
    with Queue(url) as a, Queue(other) as b:
        a.enqueue("jobs", "a")
        assert b.stats("jobs").total == 0
        assert b.claim("jobs", worker="w") == []
        assert [lease.payload for lease in a.claim("jobs", worker="w")] == ["a"]


@pytest.mark.parametrize("bad", ["Upper", "1abc", "a-b", 'x"y', "a" * 49, ""])
def test_a_bad_schema_name_is_a_config_error(url: str, bad: str) -> None:
    with pytest.raises(ConfigError, match="schema"):
        Queue(with_query(url, schema=bad))


def test_the_payload_text_is_stored_exactly(url: str) -> None:
    with Queue(url) as q:
        item_id = q.enqueue("jobs", {"b": 1, "a": [1.5, "é", None]})
        with connect(url) as conn:
            row = conn.execute(
                sql.SQL("SELECT payload::text FROM {}.items WHERE id = %s").format(
                    sql.Identifier(_schema_of(url))
                ),
                (item_id,),
            ).fetchone()
        assert row == ('{"b":1,"a":[1.5,"é",null]}',)
