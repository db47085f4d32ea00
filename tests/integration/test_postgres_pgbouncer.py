"""PostgreSQL through PgBouncer in transaction mode: what the URL options change, how waiting
claims are woken and migrations run without a session, and the deadline when the server is gone.

The contract suite and the race run through PgBouncer too (the `postgres-pgbouncer` store in
tests/support/servers.py); these tests check what only a pooler has.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.support.faultproxy import FaultProxy
from tests.support.pgbouncer import PgBouncer
from tests.support.pgserver import free_port
from tests.support.servers import postgres_base, postgres_url, with_query
from workclaim import BackendUnavailable, ConfigError, Lease, Queue, Settings
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.postgres.connection import connection_string, parse_pooler, parse_url
from workclaim.backends.postgres.listener import Listener, Poller

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def bouncer(request: pytest.FixtureRequest) -> Iterator[PgBouncer]:
    """A PgBouncer of this test's own in front of the session's PostgreSQL."""
    instance = PgBouncer(postgres_base(request))
    yield instance
    instance.stop()


def _schema(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A schema of this test's own (dropped afterwards), by name."""
    return dict(parse_qsl(urlsplit(postgres_url(request, tmp_path)).query))["schema"]


def _pg(q: Queue) -> PostgresBackend:
    backend = q.backend
    assert isinstance(backend, PostgresBackend)
    return backend


def test_the_pooler_options_are_removed_and_no_startup_options_are_sent() -> None:
    direct = "postgresql://u@h:5432/db?schema=jobs&sslmode=disable"
    url = with_query("postgresql://u@b:6432/db", pgbouncer="transaction", direct_url=direct)
    libpq, schema, _ = parse_url(url)
    pooler = parse_pooler(url)
    assert pooler.transaction and schema == "workclaim"
    assert pooler.direct_url == "postgresql://u@h:5432/db?sslmode=disable"  # ours removed
    assert "pgbouncer" not in libpq and "direct_url" not in libpq
    params = conninfo_to_dict(connection_string(libpq, 10, startup_options=False))
    assert "options" not in params and params["tcp_user_timeout"] == "10000"
    assert parse_pooler("postgresql://u@h/db") == parse_pooler("postgresql://u@h/db?pgbouncer=off")
    assert not parse_pooler("postgresql://u@h/db").transaction


@pytest.mark.parametrize(
    "option", ["pgbouncer=session", "pgbouncer=yes", "direct_url=redis%3A%2F%2Fh%2F0"]
)
def test_bad_pooler_options_are_config_errors(option: str) -> None:
    with pytest.raises(ConfigError):
        parse_pooler(f"postgresql://u@h/db?{option}")


def test_pgbouncer_without_the_option_is_refused_with_the_fix(
    bouncer: PgBouncer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = with_query(bouncer.url(), schema=_schema(request, tmp_path))
    with pytest.raises(ConfigError, match="pgbouncer=transaction"):
        Queue(url, settings=Settings(timeout=5))


def _woken_by_another_queue(waiter: Queue, producer: Queue) -> list[Lease]:
    """A claim that waits in `waiter` while `producer` (another Queue, so not this Wakeup's
    own writes) enqueues: what it got."""
    got: list[Lease] = []
    thread = threading.Thread(
        target=lambda: got.extend(waiter.claim("jobs", worker="w", wait=30)), daemon=True
    )
    thread.start()
    while _pg(waiter).wakeup().waiting == 0:
        time.sleep(0.01)
    producer.enqueue("jobs", "x")
    thread.join(35)
    return got


def test_without_a_direct_url_migrations_run_through_pgbouncer_and_waiting_claims_poll(
    bouncer: PgBouncer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = with_query(bouncer.url(), schema=_schema(request, tmp_path), pgbouncer="transaction")
    with Queue(url) as waiter, Queue(url) as producer:  # the first migrates the fresh schema
        got = _woken_by_another_queue(waiter, producer)
        assert [lease.payload for lease in got] == ["x"]
        assert isinstance(_pg(waiter)._listener, Poller)  # no LISTEN through the pooler


def test_with_a_direct_url_waiting_claims_listen_on_the_server(
    bouncer: PgBouncer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = with_query(
        bouncer.url(),
        schema=_schema(request, tmp_path),
        pgbouncer="transaction",
        direct_url=postgres_base(request),
    )
    with Queue(url) as waiter, Queue(url) as producer:
        got = _woken_by_another_queue(waiter, producer)
        assert [lease.payload for lease in got] == ["x"]
        listener = _pg(waiter)._listener
        assert isinstance(listener, Listener)
        direct = parse_pooler(url).direct_url
        assert direct is not None
        assert conninfo_to_dict(listener._conninfo)["port"] == conninfo_to_dict(direct)["port"]


def test_migrations_run_on_the_direct_url_and_only_when_there_is_work(
    bouncer: PgBouncer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    schema = _schema(request, tmp_path)
    pooled = with_query(bouncer.url(), schema=schema, pgbouncer="transaction")
    nowhere = with_query(pooled, direct_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(BackendUnavailable):
        Queue(
            nowhere, settings=Settings(timeout=2)
        )  # a fresh schema: migrating needs the direct URL
    with Queue(pooled):
        pass  # migrated through the pooler
    with Queue(nowhere, settings=Settings(timeout=2)) as q:  # up to date: no direct connection
        q.enqueue("jobs", 1)
        assert q.stats("jobs").queued == 1


def test_the_session_time_zone_is_utc_whatever_the_server_sessions_use(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    tokyo = PgBouncer(postgres_base(request), server_options="timezone=Asia/Tokyo")
    try:
        url = with_query(tokyo.url(), schema=_schema(request, tmp_path), pgbouncer="transaction")
        with Queue(url) as q:
            item = q.get(q.enqueue("jobs", 1))
            assert item.created_at.utcoffset() == timedelta(0)
            assert _pg(q).store_now().utcoffset() == timedelta(0)
    finally:
        tokyo.stop()


def test_a_call_through_pgbouncer_fails_within_the_deadline_when_the_server_is_gone(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    schema = _schema(request, tmp_path)
    server: dict[str, Any] = conninfo_to_dict(postgres_base(request))
    timeout = 2.0
    with FaultProxy(str(server.get("host", "127.0.0.1")), int(server.get("port", 5432))) as proxy:
        proxied = f"postgresql://postgres@127.0.0.1:{proxy.port}/{server.get('dbname', 'test')}"
        behind = PgBouncer(proxied)
        try:
            url = with_query(behind.url(), schema=schema, pgbouncer="transaction")
            with Queue(url, settings=Settings(timeout=timeout)) as q:
                q.enqueue("jobs", 1)
                proxy.set_mode("blackhole")  # PgBouncer still answers; the server never does
                started = time.monotonic()
                with pytest.raises(BackendUnavailable):
                    q.enqueue("jobs", 2)  # one attempt: an enqueue is never repeated
                took = time.monotonic() - started
                # A deadline, not a speed: the watchdog ends the call at `timeout` (not the
                # direct connection's `timeout` + 1 s, which waits for a statement_timeout
                # that a pooled session does not have).
                assert took < timeout + 0.8, f"the call took {took:.1f}s, deadline {timeout}s"
                proxy.set_mode("pass")
                assert _claim_once_back(q) == [1]  # no pool thread was left hanging
        finally:
            behind.stop()


def _claim_once_back(q: Queue) -> list[object]:
    """The payloads of the first claim that works again after a fault (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return [lease.payload for lease in q.claim("jobs", worker="w")]
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
