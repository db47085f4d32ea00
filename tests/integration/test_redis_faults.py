"""Redis under faults: scripts flushed, connections dropped, the server down, waits across
processes. Faults that touch the whole server run on throwaway servers, never the shared one."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.support.redisserver import RedisServer, free_port, redis_server_binary
from tests.support.servers import provider, unavailable
from workclaim import BackendUnavailable, Queue, Settings


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The shared test Redis with this test's own prefix."""
    return provider("redis")(request, tmp_path)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A throwaway server of this test's own (persistence off)."""
    if redis_server_binary() is None:
        unavailable("redis-server is not installed; this test needs a throwaway server")
    with RedisServer() as s:
        yield s


def _enqueue_when_told(url: str, ready: Any, go: Any) -> None:
    ready.set()
    go.wait(30)
    with Queue(url) as q:
        q.enqueue("jobs", {"from": "another process"})


@pytest.mark.timeout(60)
def test_a_waiter_is_woken_by_an_enqueue_in_another_process(url: str) -> None:
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    with Queue(url) as q:
        proc = ctx.Process(target=_enqueue_when_told, args=(url, ready, go))
        proc.start()
        try:
            assert ready.wait(30)
            go.set()
            leases = q.claim("jobs", worker="w1", wait=600)  # only a wake-up ends this in time
        finally:
            proc.join(30)
        assert [lease.payload for lease in leases] == [{"from": "another process"}]
        assert proc.exitcode == 0


@pytest.mark.timeout(30)
def test_waiting_claims_hold_no_connection_and_outlast_the_socket_timeout(url: str) -> None:
    with Queue(url, settings=Settings(timeout=0.1)) as q:
        backend: Any = q.backend
        results: list[list[Any]] = []
        waiters = [
            threading.Thread(target=lambda: results.append(q.claim("jobs", worker="w", wait=1.0)))
            for _ in range(4)
        ]
        for thread in waiters:
            thread.start()
        while backend.wakeup().waiting < 4:  # readiness: all four are inside their wait
            time.sleep(0.01)
        assert not backend._pool._in_use_connections
        for thread in waiters:
            thread.join()
        assert results == [[], [], [], []]  # the waits ended quietly, past the 0.1 s timeout


@pytest.mark.timeout(60)
def test_script_flush_mid_run_is_survived(server: RedisServer) -> None:
    admin = redis.Redis.from_url(server.url)
    with Queue(server.url) as q:
        q.enqueue_many("jobs", list(range(300)))
        progress = threading.Event()
        done: list[int] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                while leases := q.claim("jobs", worker="w1", limit=3):
                    for lease in leases:
                        q.heartbeat(lease)
                        q.complete(lease)
                        done.append(lease.id)
                    progress.set()
            except BaseException as exc:  # reported below
                errors.append(exc)
                progress.set()

        thread = threading.Thread(target=work)
        thread.start()
        flushes = 0
        while thread.is_alive() and flushes < 20:
            if progress.wait(10):
                progress.clear()
                admin.script_flush()
                flushes += 1
        thread.join()
        admin.script_flush()
        assert not errors
        assert q.stats("jobs").done == 300  # every verb reloads its script after NOSCRIPT
    admin.close()
    assert not errors
    assert sorted(done) == sorted(set(done)) and len(done) == 300
    assert flushes > 1


@pytest.mark.timeout(60)
def test_a_connection_killed_during_enqueue_creates_at_most_one_item(server: RedisServer) -> None:
    admin = redis.Redis.from_url(server.url)
    with Queue(server.url) as q:
        outcome: dict[str, Any] = {}

        def enqueue() -> None:
            try:
                outcome["id"] = q.enqueue("jobs", {"once": True}, dedupe_key=None)
            except BackendUnavailable as exc:
                outcome["error"] = exc

        admin.client_pause(30_000, all=False)  # hold writes: the enqueue is sent and waits
        thread = threading.Thread(target=enqueue)
        thread.start()
        while int(admin.info("clients")["blocked_clients"]) < 1:  # readiness: it is waiting
            time.sleep(0.01)
        admin.client_kill_filter(_type="normal", skipme=True)
        admin.client_unpause()
        thread.join()
        count = q.stats("jobs").queued
        assert count == 1 if "id" in outcome else count in (0, 1)
        assert "error" in outcome  # the connection died before any reply: no silent re-send
        q.enqueue("jobs", {"after": True})
        assert q.stats("jobs").queued == count + 1
    admin.close()


@pytest.mark.timeout(120)
def test_an_enqueue_that_times_out_after_running_is_not_sent_again(server: RedisServer) -> None:
    # The server runs a long enqueue_many past the client's 50 ms socket timeout: the reply is
    # lost, but the script ran. A client that re-sent it (redis-py's default retry) stores the
    # batch twice (measured: 2x with Retry(NoBackoff(), 3)); workclaim raises instead.
    n = 20_000
    with Queue(server.url, settings=Settings(timeout=0.05)) as q:
        try:
            q.enqueue_many("jobs", [0] * n)
            timed_out = False
        except BackendUnavailable:
            timed_out = True
    with Queue(server.url) as check:  # scripts are atomic: this waits for it to finish
        count = check.stats("jobs").queued
    assert count in (0, n) if timed_out else count == n


@pytest.mark.timeout(60)
def test_a_server_that_is_down_gives_backend_unavailable(server: RedisServer) -> None:
    with pytest.raises(BackendUnavailable):
        Queue(f"redis://127.0.0.1:{free_port()}/0", settings=Settings(timeout=1))
    with Queue(server.url, settings=Settings(timeout=1)) as q:
        q.enqueue("jobs", 1)
        server.stop()
        for call in (
            lambda: q.enqueue("jobs", 2),
            lambda: q.claim("jobs", worker="w1"),
            lambda: q.stats("jobs"),
            lambda: q.claim("jobs", worker="w1", wait=0.5),
        ):
            with pytest.raises(BackendUnavailable):
                call()
        server.start()  # persistence off: an empty server, but the same queue works again
        q.enqueue("jobs", 3)
        assert q.stats("jobs").queued == 1


@pytest.mark.timeout(60)
def test_a_server_busy_with_a_long_script_gives_backend_unavailable(server: RedisServer) -> None:
    admin = redis.Redis.from_url(server.url)
    admin.config_set("busy-reply-threshold", 100)  # ms before others get BUSY replies
    with Queue(server.url) as q:
        q.enqueue("jobs", 1)
        spin = "local x = 0 for i = 1, 200000000 do x = x + i end return 1"  # seconds of CPU

        def run_spin() -> None:
            with contextlib.suppress(redis.RedisError):  # SCRIPT KILL ends it with an error
                admin.eval(spin, 0)

        thread = threading.Thread(target=run_spin)
        thread.start()
        try:
            while True:  # readiness: the spin has passed the threshold once BUSY comes back
                try:
                    q.stats("jobs")
                except BackendUnavailable as exc:
                    assert "busy" in str(exc)
                    break
        finally:
            killer = redis.Redis.from_url(server.url)
            with contextlib.suppress(redis.RedisError):
                killer.script_kill()
            killer.close()
            thread.join()
        assert q.stats("jobs").queued == 1
    admin.close()


@pytest.mark.timeout(60)
def test_the_subscriber_comes_back_after_a_server_restart(server: RedisServer) -> None:
    with Queue(server.url) as q, Queue(server.url) as producer:
        assert q.claim("jobs", worker="w1", wait=0.2) == []  # the subscriber is running
        server.restart()
        producer.enqueue("warm-up", 0)  # (the producer's pool meets the restart here)
        started = threading.Event()

        def produce() -> None:
            started.wait()
            while q.backend.wakeup().waiting < 1:  # readiness: the claim is inside its wait
                time.sleep(0.01)
            producer.enqueue("jobs", {"after": "restart"})

        thread = threading.Thread(target=produce)
        thread.start()
        try:
            started.set()
            leases = q.claim("jobs", worker="w1", wait=600)  # only a wake-up ends this in time
        finally:
            thread.join()
        assert [lease.payload for lease in leases] == [{"after": "restart"}]
