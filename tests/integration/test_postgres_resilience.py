"""PostgreSQL failures: killed connections, a crash restart, a server that is down.

Crashing and stopping happen on a throwaway server of this module's own, never the shared one.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration._pg import connect
from tests.support import pgserver
from tests.support.servers import postgres_url, unavailable, with_query
from workclaim import BackendUnavailable, Queue, Settings

FAST = Settings(timeout=2)


@pytest.fixture(scope="module")
def server() -> Iterator[pgserver.PgServer]:
    bindir = pgserver.binaries()
    if bindir is None:
        unavailable("no PostgreSQL binaries to start a throwaway server for crash tests")
    assert bindir is not None
    srv = pgserver.PgServer.create(bindir)
    try:
        yield srv
    finally:
        srv.destroy()


def _own_url(base: str) -> tuple[str, str]:
    """A URL with a fresh schema and an application_name naming only this test's connections."""
    name = f"wc_resilience_{secrets.token_hex(4)}"
    return with_query(base, schema=name, application_name=name), name


def _terminate(url: str, application_name: str) -> int:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
        return len(rows)


@pytest.mark.timeout(60)
def test_the_pool_recovers_after_its_connections_are_terminated(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    base = postgres_url(request, tmp_path)
    url, name = _own_url(base)
    request.addfinalizer(lambda: pgserver.drop_schema(base, name))
    with Queue(url, settings=FAST) as q:
        q.enqueue_many("jobs", [1, 2, 3])
        # Also starts the LISTEN connection: the wait must outlast the first look (which also
        # raises the scan floors, migration 0012), or no waiter ever asks for it.
        q.claim("empty", worker="w", wait=1.0)
        assert _terminate(base, name) >= 2
        # The dead connection is noticed (a claim is safe to repeat, so it runs again on a
        # fresh connection): no error reaches us, and the queue goes on.
        [lease] = q.claim("jobs", worker="w")
        q.complete(lease)
        q.enqueue("jobs", 4)
        assert (q.stats("jobs").done, q.stats("jobs").queued) == (1, 3)
        # A connection idle past the check interval is pinged on checkout and replaced.
        assert _terminate(base, name) >= 1
        backend = q.backend
        backend._last_used.clear()  # type: ignore[attr-defined]  # as if idle for long
        q.enqueue("jobs", 5)  # not safe to repeat: only the ping can have saved it
        assert q.stats("jobs").queued == 4


@pytest.mark.timeout(120)
def test_the_same_queue_works_again_after_a_crash_restart(server: pgserver.PgServer) -> None:
    url, _ = _own_url(server.url)
    with Queue(url, settings=FAST) as q:
        first = q.enqueue_many("jobs", [1, 2])
        [lease] = q.claim("jobs", worker="w", lease_seconds=600)
        server.crash()
        with pytest.raises(BackendUnavailable):
            q.stats("jobs")
        server.start()
        # Committed work survived; the old lease is still the item's lease.
        q.complete(lease)
        [second] = q.claim("jobs", worker="w")
        assert second.id == first[1] and second.token > lease.token
        q.complete(second)
        assert q.stats("jobs").done == 2
        # The LISTEN connection comes back too: a waiter is woken by an enqueue.
        wakeup = q.backend.wakeup()
        stop = threading.Event()

        def enqueue_once_waiting() -> None:
            while wakeup.waiting == 0 and not stop.is_set():
                stop.wait(0.01)
            with Queue(url, settings=FAST) as producer:
                producer.enqueue("jobs", "after restart")

        helper = threading.Thread(target=enqueue_once_waiting)
        helper.start()
        try:
            leases = q.claim("jobs", worker="w", wait=600)
        finally:
            stop.set()
            helper.join()
        assert [le.payload for le in leases] == ["after restart"]


@pytest.mark.timeout(60)
def test_a_server_that_is_down_gives_backend_unavailable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{pgserver.free_port()}/test"
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        Queue(url, settings=Settings(timeout=0.5))


@pytest.mark.timeout(120)
def test_a_server_stopping_under_an_open_queue_gives_backend_unavailable(
    server: pgserver.PgServer,
) -> None:
    url, _ = _own_url(server.url)
    with Queue(url, settings=Settings(timeout=0.5)) as q:
        q.enqueue("jobs", 1)
        server.stop()
        try:
            for call in (
                lambda: q.claim("jobs", worker="w"),
                lambda: q.enqueue("jobs", 2),
                lambda: q.stats("jobs"),
            ):
                with pytest.raises(BackendUnavailable):
                    call()
        finally:
            server.start()
        assert q.stats("jobs").queued == 1
