"""Schedules on a store an older workclaim made: a PostgreSQL schema at version 6, a Redis
layout 3 store and a MariaDB schema at version 2 (each with items, some grouped; MariaDB's with
queue policies too) upgrade in place on first use, keep their items, and then store and fire
schedules. Without `auto_migrate` the old store is refused first."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.contract.helpers import at, claim_one
from tests.support.servers import postgres_url, provider
from workclaim import Queue, QueuePolicy, Rate, SchemaMismatch, Settings
from workclaim.backends import NewItem
from workclaim.backends._queryfile import load_text
from workclaim.backends.mariadb import schema as mariadb_schema
from workclaim.backends.mariadb.backend import MariadbBackend
from workclaim.backends.mariadb.connection import Cursor
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.redis.keys import key

NO_MIGRATE = Settings(auto_migrate=False)


def _item(payload: str, group: str | None = None) -> NewItem:
    return NewItem(payload, 0, 0.0, None, 3, None, True, group)


def _schedules_work_on(url: str, old: list[int]) -> None:
    """After the upgrade: the old items are there in their groups, and a schedule stores and
    fires its slot exactly once; every item is claimable."""
    with pytest.raises(SchemaMismatch, match="workclaim migrate"):
        Queue(url, settings=NO_MIGRATE)
    with Queue(url) as q:  # migrates
        assert [q.get(i).group for i in old] == [None, None, "tenant"]
        made = q.schedule("tick", "jobs", "* * * * *", payload={"n": 1}, now=at(0))
        assert (made.version, made.last_slot) == (1, None)
        assert q.fire_slot(made, at(60), now=at(60)) is not None
        assert q.fire_slot(made, at(60), now=at(61)) is None
        fired = q.get_schedule("tick", now=at(61))
        assert fired.last_slot == at(60) and fired.last_item_id is not None
        assert q.get(fired.last_item_id).dedupe_key == "schedule:tick:20300101T120100Z"
        got = [claim_one(q, t=70).id for _ in range(4)]
        assert sorted(got) == [*old, fired.last_item_id]
    Queue(url, settings=NO_MIGRATE).close()  # the store is at this version now


def test_a_version_6_postgres_schema_upgrades_in_place(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = postgres_url(request, tmp_path)
    backend = PostgresBackend(url, Settings())
    try:  # the schema and items as workclaim 0.3 (schema 6) left them
        backend.migrate_to(6)
        old = backend.enqueue("jobs", [_item("1"), _item("2")], now=at(0))
        old += backend.enqueue("jobs", [_item("3", "tenant")], now=at(0))
    finally:
        backend.close()
    _schedules_work_on(url, old)


def test_a_layout_3_redis_store_upgrades_in_place(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = provider("redis")(request, tmp_path)
    with Queue(url) as q:
        old = q.enqueue_many("jobs", [1, 2], now=at(0))
        old.append(q.enqueue("jobs", 3, group="tenant", now=at(0)))
    client = redis.Redis.from_url(url.split("?")[0], decode_responses=True)
    schema = key(url.split("prefix=")[1], "schema")
    try:  # layout 3 is layout 4 without the schedule keys, which the above never made
        client.set(schema, "3")
        _schedules_work_on(url, old)
        assert client.get(schema) == "4"
    finally:
        client.close()


POLICIES = [
    QueuePolicy("jobs", concurrency=10, group_concurrency=5),
    QueuePolicy("held", rate=Rate(3, 60.0), paused=True),
]


def _mariadb_at_version_2(url: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The schema as a workclaim with migrations 0001 and 0002 only left it (the real migrator,
    shown only those two), with the policies above and items, some grouped; their ids."""
    with monkeypatch.context() as patch:
        patch.setattr(mariadb_schema, "MIGRATIONS", mariadb_schema.MIGRATIONS[:2])
        patch.setattr(mariadb_schema, "SCHEMA_VERSION", 2)
        backend = MariadbBackend(url, Settings())
        try:
            backend.migrate()
            assert backend._read(mariadb_schema.version) == 2
            for policy in POLICIES:
                backend.set_policy(policy)  # the limits; the pause is set on its own
                backend.set_paused(policy.queue, policy.paused)
            old = backend.enqueue("jobs", [_item("1"), _item("2")], now=at(0))
            old += backend.enqueue("jobs", [_item("3", "tenant")], now=at(0))
        finally:
            backend.close()
    return old


def _mariadb_upgrade_works(url: str, old: list[int]) -> None:
    _schedules_work_on(url, old)
    with Queue(url) as q:
        assert [q.policy(policy.queue) for policy in POLICIES] == POLICIES
        assert q.claim("held", worker="w", now=at(80)) == []  # still paused
        backend = q.backend
        assert isinstance(backend, MariadbBackend)
        assert backend._read(mariadb_schema.version) == mariadb_schema.SCHEMA_VERSION


def test_a_version_2_mariadb_schema_upgrades_in_place(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = provider("mariadb")(request, tmp_path)
    old = _mariadb_at_version_2(url, monkeypatch)
    _mariadb_upgrade_works(url, old)


def test_a_mariadb_upgrade_cut_off_after_its_ddl_runs_again(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MariaDB commits DDL at once: a migrator that died after 0003's statements ran and before
    it recorded the file leaves version 2 with the schedules table; the next open runs 0003
    again, which must be safe to run again."""
    url = provider("mariadb")(request, tmp_path)
    old = _mariadb_at_version_2(url, monkeypatch)
    name = dict(mariadb_schema.MIGRATIONS)[3]
    statements = mariadb_schema.split_statements(
        load_text(mariadb_schema.PACKAGE, f"migrations/{name}")
    )

    def run_0003(cur: Cursor) -> None:
        for statement in statements:
            cur.execute(statement)

    backend = MariadbBackend(url, Settings())
    try:
        backend._read(run_0003)
        assert backend._read(mariadb_schema.version) == 2
    finally:
        backend.close()
    _mariadb_upgrade_works(url, old)
