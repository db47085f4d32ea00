"""Redis flow control specifics: the layout upgrade from 2, group keys whatever ':' the names
hold, the groups index's life, the plain order across queues without groups index, and waiting
claims of a limited queue woken by another client."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.contract.helpers import at, claim_one
from tests.support.servers import provider
from workclaim import GroupLeases, Lease, Queue, SchemaMismatch, Settings
from workclaim.backends.redis.keys import key


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared test Redis with this test's own prefix."""
    return provider("redis")(request, tmp_path)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url.split("?")[0], decode_responses=True)


def _prefix(url: str) -> str:
    return url.split("prefix=")[1]


def _keys(url: str) -> list[str]:
    client = _client(url)
    try:
        return sorted(client.scan_iter(match=_prefix(url) + ":*"))
    finally:
        client.close()


def test_a_layout_2_store_upgrades_in_place_and_its_items_are_in_the_default_group(
    url: str,
) -> None:
    with Queue(url) as q:
        old = q.enqueue_many("jobs", ["a", "b", "c"], now=at(0))
        later = q.enqueue("jobs", "later", delay=60, now=at(0))
        assert claim_one(q, t=1).id == old[0]
    client = _client(url)
    try:  # layout 2 is layout 3 without the flow-control keys, which the above never made
        client.set(key(_prefix(url), "schema"), "2")
    finally:
        client.close()
    with pytest.raises(SchemaMismatch, match="workclaim migrate"):
        Queue(url, settings=Settings(auto_migrate=False))
    with Queue(url) as q:  # migrates
        assert [q.get(item_id).group for item_id in (*old, later)] == [None] * 4
        new = q.enqueue("jobs", "new", group="tenant", now=at(2))
        leases = q.claim("jobs", worker="w", limit=3, now=at(3))
        # The default group was served before the upgrade, the new group never: it goes first.
        assert [(lease.id, lease.group) for lease in leases] == [
            (new, "tenant"),
            (old[1], None),
            (old[2], None),
        ]
        q.set_policy("jobs", group_concurrency=1)
        assert q.claim("jobs", worker="w", limit=5, now=at(10)) == []  # each group is full
    Queue(url, settings=Settings(auto_migrate=False)).close()


def test_group_keys_stay_apart_whatever_colons_the_queue_and_group_names_hold(url: str) -> None:
    with Queue(url) as q:
        for name in ("a", "a:b"):
            q.set_policy(name, group_concurrency=1)
        first = q.enqueue_many("a", [1, 2], group="b:c", now=at(0))
        second = q.enqueue_many("a:b", [3, 4], group="c", now=at(1))
        leases = q.claim(["a", "a:b"], worker="w", limit=10, now=at(2))
        assert [(lease.id, lease.group) for lease in leases] == [
            (first[0], "b:c"),
            (second[0], "c"),
        ]
        assert q.live_leases_by_group("a", now=at(2)) == [GroupLeases("b:c", 1)]
        assert q.live_leases_by_group("a:b", now=at(2)) == [GroupLeases("c", 1)]
        assert q.stats("a").queued == q.stats("a:b").queued == 1
    pattern = re.escape(_prefix(url)) + r":[a-z]+(:.+)?"
    assert all(re.fullmatch(pattern, name) for name in _keys(url))


def test_the_groups_index_goes_with_the_last_named_groups_ready_item(url: str) -> None:
    prefix = _prefix(url)
    with Queue(url) as q:
        q.enqueue_many("jobs", ["d1", "d2", "d3"], now=at(0))
        q.enqueue("jobs", "g1", group="g", now=at(0))
        assert key(prefix, "groups", "jobs") in _keys(url)
        leases = q.claim("jobs", worker="w", limit=2, now=at(1))  # g's only: the default is left
        assert [lease.payload for lease in leases] == ["d1", "g1"]
        assert not [name for name in _keys(url) if re.search(r":(groups|gidx|gready):", name)]
        leases += q.claim("jobs", worker="w", limit=5, now=at(1))
        assert [lease.payload for lease in leases] == ["d1", "g1", "d2", "d3"]
        for lease in leases:
            q.complete(lease, now=at(2))
        assert q.purge("jobs", older_than=0, now=at(3)) == 4
        assert _keys(url) == sorted(key(prefix, kind) for kind in ("ids", "schema", "tokens"))


def test_a_queue_that_used_groups_once_keeps_the_plain_order_beside_another(url: str) -> None:
    # Issue 15: "a" keeps served:a after its groups are gone (so its claims go the flow way),
    # but no claimed queue uses groups now: plain (priority, run_at, id) order across both.
    prefix = _prefix(url)
    with Queue(url) as q:
        q.enqueue("a", "x1", group="x", now=at(0))
        assert claim_one(q, "a", t=1).payload == "x1"
        assert key(prefix, "served", "a") in _keys(url)
        assert key(prefix, "groups", "a") not in _keys(url)
        a = q.enqueue_many("a", ["a1", "a2", "a3"], now=at(2))
        b = q.enqueue_many("b", ["b1", "b2"], now=at(3))
        leases = q.claim(["a", "b"], worker="w", limit=4, now=at(4))
        assert [lease.id for lease in leases] == [*a, b[0]]
        tokens = [lease.token for lease in leases]
        assert tokens == sorted(tokens)


def test_a_grouped_queue_before_a_limited_one_keeps_the_fair_order(url: str) -> None:
    # The plain order across queues needs every claimed queue without groups, not only the
    # last one: with "g" grouped, "p"'s default group takes its turns as a group of "p".
    with Queue(url) as q:
        q.set_policy("p", concurrency=10)
        g = q.enqueue_many("g", ["x1", "x2"], group="x", now=at(0))
        p = q.enqueue_many("p", ["p1", "p2"], now=at(1))
        leases = q.claim(["g", "p"], worker="w", limit=4, now=at(2))
        assert [lease.id for lease in leases] == [g[0], p[0], g[1], p[1]]


def _complete(q: Queue, lease: Lease) -> None:
    q.complete(lease)


def _release(q: Queue, lease: Lease) -> None:
    q.release(lease)


def _fail(q: Queue, lease: Lease) -> None:
    q.fail(lease, "boom", retry=False)


def _raise_the_limit(q: Queue, lease: Lease) -> None:
    q.set_policy("jobs", concurrency=2)


def _resume(q: Queue, lease: Lease) -> None:
    q.resume("jobs")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "free", [_complete, _release, _fail, _raise_the_limit, _resume], ids=lambda f: f.__name__
)
def test_a_waiting_claim_of_a_limited_queue_is_woken_by_another_client(
    url: str, free: Callable[[Queue, Lease], Any]
) -> None:
    # The wait (600 s) and the holder's lease (600 s) are far longer than the test's timeout: only
    # a wake-up published by the other client's script can pass it (its Queue is not the waiter's).
    with Queue(url) as waiter, Queue(url) as other:
        other.set_policy("jobs", concurrency=1)
        other.enqueue_many("jobs", [1, 2])
        [held] = other.claim("jobs", worker="holder", lease_seconds=600)
        if free is _resume:
            other.complete(held)
            other.pause("jobs")

        def act() -> None:
            while waiter.backend.wakeup().waiting == 0:
                time.sleep(0.01)
            free(other, held)

        # Start the waiter's listener first: its subscription wakes waiters once by itself.
        assert waiter.claim("warm-up", worker="waiter", wait=0.3) == []
        thread = threading.Thread(target=act)
        thread.start()
        try:
            leases = waiter.claim("jobs", worker="waiter", wait=600)
        finally:
            thread.join()
        assert len(leases) == 1


@pytest.mark.timeout(60)
def test_a_lease_given_before_the_queue_had_limits_wakes_waiting_claims_when_it_ends(
    url: str,
) -> None:
    with Queue(url) as waiter, Queue(url) as other:
        other.enqueue_many("jobs", [1, 2])
        [held] = other.claim("jobs", worker="holder", lease_seconds=600)  # no limits yet
        other.set_policy("jobs", concurrency=1)
        assert waiter.claim("warm-up", worker="waiter", wait=0.3) == []

        def act() -> None:
            while waiter.backend.wakeup().waiting == 0:
                time.sleep(0.01)
            other.complete(held)

        thread = threading.Thread(target=act)
        thread.start()
        try:
            leases = waiter.claim("jobs", worker="waiter", wait=600)
        finally:
            thread.join()
        assert [lease.payload for lease in leases] == [2]
