"""Expired leases are claimable by the next claim of their queue, however many leases expired
elsewhere; and a backend given the same queue name twice leases no item twice.

Runs on every backend, SQLite's `:memory:` store included, and (the `queue` tests) over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract.helpers import at, claim_one, status_of
from tests.support.servers import BACKENDS, provider
from workclaim import Lease, Queue, Settings
from workclaim.backends.postgres import backend as postgres_backend
from workclaim.backends.redis import backend as redis_backend
from workclaim.backends.sqlite import backend as sqlite_backend

MEMORY = "sqlite-memory"
# More expired leases than any backend's claim reaps across all queues in one go.
CRASHED = max(m.REAP_LIMIT for m in (sqlite_backend, postgres_backend, redis_backend)) + 50


@pytest.fixture(params=[*BACKENDS, MEMORY])
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each backend, and SQLite's in-process `:memory:` store."""
    return str(request.param)


@pytest.fixture
def store_url(backend_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's own store; `:memory:` is private to the one Queue that opens it."""
    if backend_name == MEMORY:
        return "sqlite:///:memory:"
    return provider(backend_name)(request, tmp_path)


@pytest.fixture
def direct(store_url: str, settings: Settings) -> Iterator[Queue]:
    """A Queue on the store, for the backend verbs the HTTP API does not expose."""
    with Queue(store_url, settings=settings) as q:
        yield q


def crash_a_pool(q: Any, queue: str = "crashed", *, expires: float = 1) -> None:
    """CRASHED leases in `queue` that all expire at T0 + `expires`, as a crashed pool leaves."""
    q.enqueue_many(queue, list(range(CRASHED)), now=at(0))
    assert (
        len(q.claim(queue, worker="gone", limit=CRASHED, lease_seconds=expires, now=at(0)))
        == CRASHED
    )


def one_expiring_lease(q: Any, queue: str = "jobs", *, expires: float = 5) -> Lease:
    """One item of `queue` whose lease expires at T0 + `expires`, later than the crashed pool's."""
    q.enqueue(queue, {"mine": True}, now=at(0))
    return claim_one(q, queue, t=0, lease_seconds=expires, worker="gone")


# -- an expired lease is claimable whatever else expired ------------------------------------


def test_a_claim_takes_its_queues_expired_lease_behind_a_crashed_pool(queue: Any) -> None:
    crash_a_pool(queue)
    old = one_expiring_lease(queue)
    [lease] = queue.claim("jobs", worker="w1", now=at(10))
    assert (lease.id, lease.attempt) == (old.id, 2) and lease.token > old.token


def test_a_claim_of_several_queues_takes_an_expired_lease_behind_a_crashed_pool(
    queue: Any,
) -> None:
    crash_a_pool(queue)
    old = one_expiring_lease(queue, "b")
    assert [lease.id for lease in queue.claim(["a", "b"], worker="w1", now=at(10))] == [old.id]


def test_the_fused_turn_takes_an_expired_lease_behind_a_crashed_pool(queue: Any) -> None:
    crash_a_pool(queue)
    old = one_expiring_lease(queue)
    lost, leases = queue.complete_and_claim([], "jobs", worker="w1", now=at(10))
    assert lost == [] and [lease.id for lease in leases] == [old.id]


def test_the_crashed_pool_is_still_reaped_by_claims_of_other_queues(queue: Any) -> None:
    crash_a_pool(queue)
    for _ in range(CRASHED):  # each claim reaps a bounded batch of any queue's expired leases
        if queue.stats("crashed", now=at(10)).expired == 0:
            break
        queue.claim("elsewhere", worker="w1", now=at(10))
    stats = queue.stats("crashed", now=at(10))
    assert (stats.queued, stats.claimed, stats.expired) == (CRASHED, 0, 0)


@pytest.mark.timeout(60)
def test_a_waiting_claim_looks_again_at_once_while_expired_leases_remain(queue: Any) -> None:
    # One claim reaps a bounded batch of the claimed queue (here: items with no attempt left,
    # which go dead) and of the oldest leases anywhere (the crashed pool): `mine` is still
    # expired after it. The wait must not sleep beside it: next_due says it is due now.
    crash_a_pool(queue, expires=1)
    spent = queue.enqueue_many("jobs", list(range(CRASHED)), max_attempts=1, now=at(0))
    claimed = queue.claim("jobs", worker="gone", limit=CRASHED, lease_seconds=2, now=at(0))
    assert len(claimed) == CRASHED
    mine = one_expiring_lease(queue, expires=3)
    leases = queue.claim("jobs", worker="w1", wait=10, now=at(10))
    assert [lease.id for lease in leases] == [mine.id]
    assert {status_of(queue, i) for i in spent} == {"dead"}


def test_next_due_reports_an_expired_lease_of_the_named_queues_as_due_now(
    direct: Queue,
) -> None:
    crash_a_pool(direct)
    one_expiring_lease(direct)
    direct.claim("elsewhere", worker="w1", now=at(10))  # reaps part of the pool, not `jobs`
    assert direct.stats("jobs", now=at(10)).expired == 1
    due = direct.backend.next_due(["jobs"], now=at(10))
    assert due is not None and due <= at(10)
    assert direct.backend.next_due(["idle"], now=at(10)) is None


def test_next_due_of_a_future_expiry_is_that_expiry(direct: Queue) -> None:
    one_expiring_lease(direct, expires=5)
    assert direct.backend.next_due(["jobs"], now=at(1)) == at(5)


# -- the backend verbs given the same queue name twice -------------------------------------


def assert_leased_once(q: Queue, leases: list[Lease]) -> None:
    """Distinct items, each held by exactly the token its lease carries."""
    assert len({lease.id for lease in leases}) == len(leases), leases
    assert len({lease.token for lease in leases}) == len(leases), leases
    for lease in leases:
        item = q.get(lease.id)
        assert item is not None and item.expires_at == lease.expires_at
    for lease in leases:  # every lease is the item's current one: its completion is accepted
        q.complete(lease, now=at(1))


def test_a_backend_claim_leases_no_item_twice_for_a_repeated_queue_name(direct: Queue) -> None:
    ids = direct.enqueue_many("jobs", [1, 2, 3], now=at(0))
    leases = direct.backend.claim(
        ["jobs", "jobs"], worker="w1", lease_seconds=30, limit=2, now=at(0)
    )
    assert [lease.id for lease in leases] == ids[:2]
    assert_leased_once(direct, leases)
    rest = direct.backend.claim(
        ["jobs", "other", "jobs"], worker="w1", lease_seconds=30, limit=10, now=at(0)
    )
    assert [lease.id for lease in rest] == ids[2:]
    assert_leased_once(direct, rest)


def test_a_backend_fused_turn_leases_no_item_twice_for_a_repeated_queue_name(
    direct: Queue,
) -> None:
    ids = direct.enqueue_many("jobs", [1, 2, 3], now=at(0))
    flags, leases = direct.backend.complete_and_claim(
        [], ["jobs", "jobs"], worker="w1", lease_seconds=30, limit=10, now=at(0)
    )
    assert flags == [] and [lease.id for lease in leases] == ids
    assert_leased_once(direct, leases)


def test_a_backend_next_due_is_the_same_for_a_repeated_queue_name(direct: Queue) -> None:
    direct.enqueue("jobs", 1, delay=7, now=at(0))
    one_expiring_lease(direct, expires=5)
    assert direct.backend.next_due(["jobs", "jobs"], now=at(1)) == at(5)
    assert direct.backend.next_due(["jobs", "jobs"], now=at(6)) == at(6)
