"""Redis durability, checked at connect on throwaway servers with the settings under test.

An evicting policy is refused; persistence weaker than `appendonly yes` + `appendfsync always`
is logged once (or refused with `strict_durability`); where CONFIG is refused the check reads
INFO instead; with the full settings a crash (SIGKILL) loses nothing acknowledged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import redis

from tests.support.redisserver import RedisServer, redis_server_binary
from tests.support.servers import unavailable
from workclaim import BackendError, ConfigError, Queue, Settings

DURABLE = {"appendonly": "yes", "appendfsync": "always"}
STRICT = Settings(strict_durability=True)


@pytest.fixture(autouse=True)
def _needs_redis_server() -> None:
    if redis_server_binary() is None:
        unavailable("redis-server is not installed; the durability tests need throwaway servers")


@pytest.fixture
def limited_user() -> Iterator[tuple[RedisServer, str]]:
    """A throwaway server (persistence off) and a URL for a user that may not run CONFIG."""
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser(
            "worker",
            enabled=True,
            passwords=["+s3cret"],
            keys=["*"],
            channels=["*"],
            commands=["+@all", "-config"],
        )
        admin.close()
        yield server, server.url.replace("redis://", "redis://worker:s3cret@")


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
def test_an_evicting_policy_is_refused(policy: str) -> None:
    with (
        RedisServer({"maxmemory-policy": policy}) as server,
        pytest.raises(ConfigError, match=f"maxmemory-policy {policy}"),
    ):
        Queue(server.url)


def test_persistence_off_is_logged_once_per_server(caplog: pytest.LogCaptureFixture) -> None:
    with RedisServer() as server, caplog.at_level(logging.WARNING, logger="workclaim"):
        Queue(server.url).close()
        Queue(server.url + "?prefix=other").close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "workclaim"]
    assert len(warnings) == 1
    assert "appendonly no" in warnings[0] and "loses every item" in warnings[0]


def test_everysec_is_logged_with_what_it_can_lose(caplog: pytest.LogCaptureFixture) -> None:
    with (
        RedisServer({"appendonly": "yes", "appendfsync": "everysec"}) as server,
        caplog.at_level(logging.WARNING, logger="workclaim"),
    ):
        Queue(server.url).close()
    assert any("about the last second" in r.getMessage() for r in caplog.records)


def test_strict_durability_refuses_persistence_off() -> None:
    with (
        RedisServer() as server,
        pytest.raises(ConfigError, match=r"strict_durability.*appendonly no"),
    ):
        Queue(server.url, settings=STRICT)


def test_strict_durability_refuses_everysec() -> None:
    with (
        RedisServer({"appendonly": "yes", "appendfsync": "everysec"}) as server,
        pytest.raises(ConfigError, match="everysec"),
    ):
        Queue(server.url, settings=STRICT)


def test_strict_durability_accepts_appendfsync_always(caplog: pytest.LogCaptureFixture) -> None:
    with (
        RedisServer(DURABLE) as server,
        caplog.at_level(logging.WARNING, logger="workclaim"),
        Queue(server.url, settings=STRICT) as q,
    ):
        q.enqueue("jobs", 1)
        assert q.stats("jobs").queued == 1
    assert not [r for r in caplog.records if r.name == "workclaim"]


def test_without_config_the_check_reads_info(
    limited_user: tuple[RedisServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = limited_user
    with caplog.at_level(logging.WARNING, logger="workclaim"), Queue(url) as q:
        q.enqueue("jobs", 1)
    assert any("appendonly no" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match="strict_durability"):
        Queue(url, settings=STRICT)


def test_without_config_an_evicting_policy_is_still_refused() -> None:
    with RedisServer({"maxmemory-policy": "allkeys-lfu"}) as server:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser(
            "worker", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config"]
        )
        admin.close()
        with pytest.raises(ConfigError, match="allkeys-lfu"):
            Queue(server.url.replace("redis://", "redis://worker:pw@"))


def test_without_config_strict_cannot_verify_appendfsync() -> None:
    with RedisServer(DURABLE) as server:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser(
            "worker", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config"]
        )
        admin.close()
        with pytest.raises(ConfigError, match="appendfsync could not be read"):
            Queue(server.url.replace("redis://", "redis://worker:pw@"), settings=STRICT)


@pytest.mark.timeout(60)
def test_with_appendfsync_always_a_crash_loses_nothing_acknowledged() -> None:
    with RedisServer(DURABLE) as server, Queue(server.url, settings=STRICT) as q:
        ids = q.enqueue_many("jobs", list(range(50)))
        leases = q.claim("jobs", worker="w1", limit=10)
        for lease in leases[:5]:
            q.complete(lease)
        server.restart()  # SIGKILL, then start on the same files
        stats = q.stats("jobs")
        assert (stats.queued, stats.claimed, stats.done) == (40, 5, 5)
        again = q.claim("jobs", worker="w2", limit=100)
        assert len(again) == 40
        assert min(lease.token for lease in again) > max(lease.token for lease in leases)
        assert q.get(ids[-1]).status.value == "claimed"


DOCUMENTED_ACL = (
    "on >long-random-password resetkeys ~workclaim:* resetchannels &workclaim:wakeup "
    "-@all +evalsha +eval +time +get +info +ping +hello +client|setname "
    "+subscribe +unsubscribe +config|get "
    "+hset +hget +hmget +hdel +hgetall +incr +set +del +exists +publish +sadd +srem +smembers "
    "+rpush +lrange +zadd +zrem +zpopmin +zrange +zrangebyscore +zcard +zcount"
)


@pytest.mark.timeout(60)
def test_the_acl_in_the_docs_is_enough() -> None:
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.execute_command("ACL", "SETUSER", "workclaim", *DOCUMENTED_ACL.split())  # type: ignore[no-untyped-call]
        url = server.url.replace("redis://", "redis://workclaim:long-random-password@")
        with Queue(url) as q, Queue(url) as producer:
            first = q.enqueue("jobs", 1, dedupe_key="k")
            lease = q.claim("jobs", worker="w")[0]
            q.heartbeat(lease)
            q.fail(lease, "x", retry=False)
            q.requeue(first)
            assert [str(e.kind) for e in q.history(first)] == [
                "claimed",
                "heartbeat",
                "failed",
                "requeued",
            ]
            admin.script_flush()  # the next call sends its script again with EVAL
            q.complete(q.claim("jobs", worker="w")[0])
            q.cancel(q.enqueue("jobs", 2))
            assert q.purge("jobs", older_than=0) == 2
            waiter = threading.Thread(target=lambda: producer.enqueue("jobs", 3))
            waiter.start()
            assert [lease.payload for lease in q.claim("jobs", worker="w", wait=30)] == [3]
            waiter.join()
            assert q.stats("jobs").claimed == 1
            assert len(q.items("jobs", "claimed")) == 1
            assert q.queues() == ["jobs"]
            lost, leases = q.complete_and_claim([], "jobs", worker="w")
            assert (lost, leases) == ([], [])
        admin.close()


def test_a_full_redis_refuses_the_enqueue_and_keeps_what_it_acknowledged() -> None:
    with (
        RedisServer({"maxmemory": "3mb", "maxmemory-policy": "noeviction"}) as server,
        Queue(server.url) as q,
    ):
        acknowledged = 0
        with pytest.raises(BackendError, match="out of memory"):
            for _ in range(10_000):
                q.enqueue_many("jobs", ["x" * 1_000] * 10)
                acknowledged += 10
        assert q.stats("jobs").queued == acknowledged
