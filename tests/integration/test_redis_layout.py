"""Redis specifics: URL options, the key layout, script headers, prefixes and the clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.contract.helpers import at, claim_one
from tests.support.servers import provider
from workclaim import ConfigError, Queue, SchemaMismatch, Settings
from workclaim.backends.redis.connection import parse_url
from workclaim.backends.redis.keys import key
from workclaim.backends.redis.lua import SCRIPTS

SCRIPT_DIR = Path(__file__).parents[2] / "src/workclaim/backends/redis/scripts"


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared test Redis with this test's own prefix."""
    return provider("redis")(request, tmp_path)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url.split("?")[0], decode_responses=True)


def _prefix(url: str) -> str:
    return url.split("prefix=")[1]


def test_url_options_are_checked() -> None:
    target = parse_url("redis://h:6380/3?prefix=app:jobs&health_check_interval=5")
    assert (target.url, target.prefix, target.health_check_interval) == (
        "redis://h:6380/3",
        "app:jobs",
        5.0,
    )
    assert parse_url("rediss://h/0").prefix == "workclaim"
    with pytest.raises(ConfigError, match="unknown redis URL option"):
        parse_url("redis://h/0?socket_timeout=1")
    with pytest.raises(ConfigError, match="prefix"):
        parse_url("redis://h/0?prefix=bad*prefix")
    with pytest.raises(ConfigError, match="health_check_interval"):
        parse_url("redis://h/0?health_check_interval=soon")


def test_every_script_documents_keys_argv_and_reply() -> None:
    for path in sorted(SCRIPT_DIR.glob("[!_]*.lua")):
        lines = path.read_text().splitlines()
        assert lines[0].startswith("#!lua"), path.name
        header = "\n".join(line for line in lines[1:12] if line.startswith("--"))
        for word in ("KEYS:", "ARGV:", "Reply:"):
            assert word in header, f"{path.name} header lacks {word}"
    assert set(SCRIPTS) == {p.stem for p in SCRIPT_DIR.glob("[!_]*.lua")}


def test_lua_builds_the_same_keys_as_keys_py(url: str) -> None:
    client = _client(url)
    try:
        lua = "#!lua flags=no-writes\n" + (SCRIPT_DIR / "_common.lua").read_text()
        lua += "\nreturn {key('leases'), key('ready', ARGV[3]), key('item', ARGV[4])}"
        got = client.eval(lua, 0, "p:x", "", "tenant:42:jobs", "17")
        assert got == [
            key("p:x", "leases"),
            key("p:x", "ready", "tenant:42:jobs"),
            key("p:x", "item", 17),
        ]
    finally:
        client.close()


def test_all_keys_live_under_the_prefix_and_queues_with_colons_stay_apart(url: str) -> None:
    with Queue(url) as q:
        q.enqueue("a", 1, dedupe_key="k")
        q.enqueue("a:ready", 2, dedupe_key="k")
        q.enqueue("a:ready:a", 3, delay=60)
        q.complete(q.claim("a", worker="w")[0])
        assert [q.stats(name).total for name in ("a", "a:ready", "a:ready:a")] == [1, 1, 1]
    client = _client(url)
    try:
        prefix = _prefix(url)
        ours = list(client.scan_iter(match=prefix + ":*"))
        assert ours and all(re.fullmatch(re.escape(prefix) + r":[a-z]+(:.+)?", n) for n in ours)
    finally:
        client.close()


def test_two_prefixes_on_one_database_are_separate_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    first = provider("redis")(request, tmp_path)
    second = provider("redis")(request, tmp_path)
    with Queue(first) as a, Queue(second) as b:
        a.enqueue("jobs", 1)
        assert b.stats("jobs").total == 0
        assert b.claim("jobs", worker="w") == []


def test_payloads_are_stored_as_the_text_given(url: str) -> None:
    with Queue(url) as q:
        item_id = q.enqueue("jobs", {"b": [1, 2.5], "a": "ü"})
    client = _client(url)
    try:
        stored = client.hget(key(_prefix(url), "item", item_id), "payload")
        assert stored == '{"b":[1,2.5],"a":"ü"}'
    finally:
        client.close()


def test_a_fresh_prefix_without_auto_migrate_says_to_migrate(url: str) -> None:
    with pytest.raises(SchemaMismatch, match="workclaim migrate"):
        Queue(url, settings=Settings(auto_migrate=False))
    Queue(url).close()
    Queue(url, settings=Settings(auto_migrate=False)).close()


def test_a_newer_layout_is_refused(url: str) -> None:
    Queue(url).close()
    client = _client(url)
    try:
        client.set(key(_prefix(url), "schema"), "999")
    finally:
        client.close()
    with pytest.raises(SchemaMismatch, match="newer"):
        Queue(url)


def test_a_clock_behind_the_one_that_made_an_item_ready_does_not_claim_it(url: str) -> None:
    with Queue(url) as q:
        item_id = q.enqueue("jobs", 1, now=at(10))
        assert q.claim("jobs", worker="w", now=at(5)) == []
        assert q.backend.next_due(["jobs"], now=at(5)) == at(10)
        assert claim_one(q, t=10).id == item_id


def test_store_clock_is_redis_time(url: str) -> None:
    with Queue(url) as q:
        client = _client(url)
        try:
            seconds, _ = client.time()
        finally:
            client.close()
        assert abs(q.backend.store_now().timestamp() - seconds) < 60
        item_id = q.enqueue("jobs", 1)
        assert abs(q.get(item_id).created_at.timestamp() - seconds) < 60


def test_expired_leases_are_reaped_in_bounded_batches(url: str) -> None:
    from workclaim.backends.redis import backend as module

    with Queue(url) as q:
        q.enqueue_many("jobs", list(range(module.REAP_LIMIT + 50)), now=at(0))
        leases: list[Any] = q.claim("jobs", worker="w", limit=1000, lease_seconds=10, now=at(0))
        assert len(leases) == module.REAP_LIMIT + 50
        q.enqueue("other", 1, now=at(0))
        q.claim("other", worker="w", now=at(20))  # reaps one batch of expired leases
        stats = q.stats("jobs", now=at(20))
        assert (stats.queued, stats.claimed) == (module.REAP_LIMIT, 50)
        assert len(q.claim("jobs", worker="w", limit=1000, now=at(20))) == module.REAP_LIMIT + 50


def test_a_clock_behind_is_respected_across_several_queues(url: str) -> None:
    with Queue(url) as q:
        late = q.enqueue("a", "late", now=at(10))
        early = q.enqueue("b", "early", priority=5, now=at(1))
        assert [lease.id for lease in q.claim(["a", "b"], worker="w", limit=5, now=at(5))] == [
            early
        ]
        assert [lease.id for lease in q.claim(["a", "b"], worker="w", limit=5, now=at(10))] == [
            late
        ]


def test_run_at_before_1970_sorts_first_and_round_trips(url: str) -> None:
    old = datetime(1960, 6, 1, 0, 0, 0, 1, tzinfo=UTC)
    with Queue(url) as q:
        recent = q.enqueue("jobs", "recent", run_at=at(0), now=at(0))
        oldest = q.enqueue("jobs", "oldest", run_at=old, now=at(0))
        assert q.get(oldest).run_at == old
        leases = q.claim("jobs", worker="w", limit=5, now=at(0))
        assert [lease.id for lease in leases] == [oldest, recent]


def test_keys_left_by_layout_1_are_migrated(url: str) -> None:
    with Queue(url) as q:
        ready = q.enqueue("jobs", "ready", now=at(0))
        delayed = q.enqueue("jobs", "later", delay=3_600, now=at(0))
        held, finished = q.enqueue_many("jobs", ["held", "done"], now=at(0))
        claim_one(q, t=0)  # `ready` (first by id)
        q.complete(claim_one(q, t=0), now=at(1))  # `held`
        q.fail(claim_one(q, t=0), "x", retry=False, now=at(1))  # `finished` is dead
    client = _client(url)
    prefix = _prefix(url)
    try:  # what layout 1 had: no id indexes, no history flags or lists, queues never removed
        old = list(client.scan_iter(match=f"{prefix}:ids:*"))
        old += list(client.scan_iter(match=f"{prefix}:history:*"))
        client.delete(*old)
        for item_id in (ready, delayed, held, finished):
            client.hdel(key(prefix, "item", item_id), "history")
        client.sadd(key(prefix, "queues"), "purged-long-ago")
        client.set(key(prefix, "schema"), "1")
    finally:
        client.close()
    with pytest.raises(SchemaMismatch, match="workclaim migrate"):
        Queue(url, settings=Settings(auto_migrate=False))
    with Queue(url) as q:  # migrates
        assert q.queues() == ["jobs"]
        by_status = {s: [i.id for i in q.items("jobs", s)] for s in ("queued", "claimed", "done")}
        assert by_status == {"queued": [delayed], "claimed": [ready], "done": [held]}
        assert [i.id for i in q.items("jobs", "dead")] == [finished]
        assert q.history(ready) == []  # an item from layout 1 keeps no history (no flag)
        q.complete(claim_one(q, t=3_600), now=at(3_601))  # `delayed`, now due
        assert q.history(delayed) == []


def test_purge_takes_the_history_and_the_index_entries_with_the_item(url: str) -> None:
    with Queue(url) as q:
        item_id = q.enqueue("jobs", 1, now=at(0))
        q.complete(claim_one(q, t=0), now=at(1))
        client = _client(url)
        try:
            prefix = _prefix(url)
            assert client.llen(key(prefix, "history", item_id)) == 2
            assert q.purge("jobs", older_than=0, now=at(5)) == 1
            left = sorted(client.scan_iter(match=f"{prefix}:*"))
            assert left == sorted(key(prefix, kind) for kind in ("ids", "schema", "tokens"))
        finally:
            client.close()
        assert q.queues() == []


def test_a_fused_call_completes_leases_of_other_worker_names(url: str) -> None:
    with Queue(url) as q:
        a, b = q.enqueue_many("jobs", [1, 2], now=at(0))
        mine = claim_one(q, t=0, worker="old-name")
        lost, leases = q.complete_and_claim([mine], "jobs", worker="new-name", now=at(1))
        assert lost == [] and [lease.id for lease in leases] == [b]
        assert [e.worker for e in q.history(a)] == ["old-name", "old-name"]
        assert q.history(b)[0].worker == "new-name"


def test_items_agrees_with_every_items_status_after_every_kind_of_change(url: str) -> None:
    with Queue(url) as q:
        ids = q.enqueue_many("jobs", list(range(8)), max_attempts=2, now=at(0))
        q.enqueue("jobs", "later", delay=3_600, now=at(0))
        leases = q.claim("jobs", worker="w", limit=6, lease_seconds=5, now=at(0))
        q.complete(leases[0], now=at(1))
        q.fail(leases[1], "retry", now=at(1))
        q.fail(leases[2], "fatal", retry=False, now=at(1))
        q.release(leases[3], now=at(1))
        q.cancel(ids[7], now=at(1))
        q.claim("other", worker="w", now=at(10))  # reaps leases[4] and [5] back to queued
        again = q.claim("jobs", worker="w", limit=2, lease_seconds=5, now=at(10))
        q.claim("other", worker="w", now=at(20))  # reaps them again: the second attempt -> dead
        q.requeue(leases[2].id, now=at(21))
        assert len(again) == 2 and q.claim("jobs", worker="w", lease_seconds=600, now=at(21))
        stored = {item_id: q.get(item_id).status.value for item_id in range(1, 10)}
        for status in ("queued", "claimed", "done", "dead", "cancelled"):
            listed = [item.id for item in q.items("jobs", status)]
            assert listed == sorted(i for i, s in stored.items() if s == status), status
        assert set(stored.values()) == {"queued", "claimed", "done", "dead", "cancelled"}
