"""Flow control, the limits: concurrency and group_concurrency counted in live leases, rate and
group_rate windows, pause and resume, and complete_and_claim under all of them
(docs/contract.md, "Flow control"). The clock is injected; nothing sleeps."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.contract.helpers import at, claim_one, status_of
from workclaim import Lease, Queue, Settings, Status


def ids(leases: list[Lease]) -> list[int]:
    """The items' ids, in the batch's order."""
    return [lease.id for lease in leases]


def groups(leases: list[Lease]) -> Counter[str | None]:
    """How many of the leases each group got."""
    return Counter(lease.group for lease in leases)


# -- concurrency ----------------------------------------------------------------------------
def test_concurrency_caps_live_leases_and_a_batch_returns_fewer(queue: Any) -> None:
    item_ids = queue.enqueue_many("jobs", list(range(5)), now=at(0))
    queue.set_policy("jobs", concurrency=2)
    first = queue.claim("jobs", worker="w1", limit=5, now=at(0))
    assert ids(first) == item_ids[:2]
    assert queue.claim("jobs", worker="w2", limit=5, now=at(1)) == []
    assert queue.claim("jobs", worker="w2", now=at(1)) == []
    assert queue.stats("jobs", now=at(1)).queued == 3


def test_complete_release_and_fail_each_free_a_slot(queue: Any) -> None:
    item_ids = queue.enqueue_many("jobs", list(range(6)), max_attempts=3, now=at(0))
    queue.set_policy("jobs", concurrency=1)
    first = claim_one(queue, t=0)
    queue.complete(first, now=at(1))
    second = claim_one(queue, t=1)
    assert second.id == item_ids[1]
    assert queue.claim("jobs", worker="w1", now=at(1)) == []
    queue.release(second, delay=100, now=at(2))
    third = claim_one(queue, t=2)
    assert third.id == item_ids[2]
    assert queue.claim("jobs", worker="w1", now=at(2)) == []
    queue.fail(third, "boom", now=at(3))  # retried later: the slot is free now
    assert claim_one(queue, t=3).id == item_ids[3]


def test_an_expired_lease_holds_no_slot(queue: Any) -> None:
    item_ids = queue.enqueue_many("jobs", [1, 2, 3], max_attempts=1, now=at(0))
    queue.set_policy("jobs", concurrency=1)
    claim_one(queue, t=0, lease_seconds=10)
    assert queue.claim("jobs", worker="w1", now=at(9.999)) == []
    # At 10 the lease is no longer live (expires_at is not after now): the slot is free, and
    # the expired item (no attempt left) goes dead on the way.
    assert claim_one(queue, t=10, lease_seconds=10).id == item_ids[1]
    assert status_of(queue, item_ids[0]) == "dead"
    assert queue.claim("jobs", worker="w1", now=at(19.999)) == []


def test_an_expired_lease_frees_its_slot_for_its_own_item(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, max_attempts=5, now=at(0))
    queue.set_policy("jobs", concurrency=1)
    first = claim_one(queue, t=0, lease_seconds=10)
    second = claim_one(queue, t=10, lease_seconds=10)
    assert second.id == item_id and second.token > first.token


def test_a_lowered_limit_lets_leases_run_on_and_gives_none_until_back_within(
    queue: Any,
) -> None:
    queue.enqueue_many("jobs", list(range(6)), now=at(0))
    queue.set_policy("jobs", concurrency=3)
    held = queue.claim("jobs", worker="w1", limit=3, lease_seconds=60, now=at(0))
    assert len(held) == 3
    queue.set_policy("jobs", concurrency=1)
    assert queue.claim("jobs", worker="w2", limit=5, now=at(1)) == []
    # The leases beyond the new limit run on: they heartbeat and complete as usual.
    queue.heartbeat(held[0], now=at(2))
    queue.complete(held[0], now=at(3))
    assert queue.claim("jobs", worker="w2", limit=5, now=at(3)) == []  # 2 live > 1
    queue.complete(held[1], now=at(4))
    assert queue.claim("jobs", worker="w2", limit=5, now=at(4)) == []  # 1 live: full
    queue.complete(held[2], now=at(5))
    assert len(queue.claim("jobs", worker="w2", limit=5, now=at(5))) == 1


def test_a_raised_or_lifted_limit_gives_more_at_once(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(10)), now=at(0))
    queue.set_policy("jobs", concurrency=1)
    assert len(queue.claim("jobs", worker="w1", limit=10, now=at(0))) == 1
    queue.set_policy("jobs", concurrency=4)
    assert len(queue.claim("jobs", worker="w1", limit=10, now=at(0))) == 3
    queue.set_policy("jobs")
    assert len(queue.claim("jobs", worker="w1", limit=10, now=at(0))) == 6


def test_concurrency_counts_every_group_of_the_queue(queue: Any) -> None:
    for group in ("a", "b", None):
        queue.enqueue_many("jobs", [1, 2], group=group, now=at(0))
    queue.set_policy("jobs", concurrency=4)
    assert len(queue.claim("jobs", worker="w1", limit=10, now=at(0))) == 4
    assert queue.claim("jobs", worker="w1", limit=10, now=at(0)) == []


def test_a_limit_applies_to_its_own_queue_only(queue: Any) -> None:
    queue.enqueue_many("a", [1, 2, 3], now=at(0))
    queue.enqueue_many("b", [1, 2, 3], now=at(0))
    queue.set_policy("a", concurrency=1)
    leases = queue.claim(["a", "b"], worker="w1", limit=10, now=at(0))
    assert Counter(lease.queue for lease in leases) == {"a": 1, "b": 3}


# -- group_concurrency --------------------------------------------------------------------
def test_group_concurrency_caps_each_groups_live_leases(queue: Any) -> None:
    queue.enqueue_many("jobs", [1, 2, 3], group="a", now=at(0))
    queue.enqueue_many("jobs", [1, 2], group="b", now=at(0))
    queue.enqueue_many("jobs", [1, 2], now=at(0))  # the default group is a group too
    queue.set_policy("jobs", group_concurrency=1)
    first = queue.claim("jobs", worker="w1", limit=10, now=at(0))
    assert groups(first) == {"a": 1, "b": 1, None: 1}
    assert queue.claim("jobs", worker="w1", limit=10, now=at(0)) == []
    queue.complete(next(lease for lease in first if lease.group == "a"), now=at(1))
    again = queue.claim("jobs", worker="w1", limit=10, now=at(1))
    assert [lease.group for lease in again] == ["a"]


def test_group_concurrency_of_three(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(5)), group="a", now=at(0))
    queue.enqueue_many("jobs", list(range(2)), group="b", now=at(0))
    queue.set_policy("jobs", group_concurrency=3)
    first = queue.claim("jobs", worker="w1", limit=2, now=at(0))
    second = queue.claim("jobs", worker="w1", limit=10, now=at(0))
    assert groups(first + second) == {"a": 3, "b": 2}
    assert queue.claim("jobs", worker="w1", limit=10, now=at(0)) == []


def test_group_and_queue_limits_together(queue: Any) -> None:
    for group in ("a", "b", "c"):
        queue.enqueue_many("jobs", [1, 2, 3], group=group, now=at(0))
    queue.set_policy("jobs", concurrency=5, group_concurrency=2)
    leases = queue.claim("jobs", worker="w1", limit=10, now=at(0))
    assert len(leases) == 5 and max(groups(leases).values()) == 2


def test_groups_of_the_same_name_in_two_queues_are_two_groups(queue: Any) -> None:
    queue.enqueue_many("a", [1, 2], group="tenant-42", now=at(0))
    queue.enqueue_many("b", [1, 2], group="tenant-42", now=at(0))
    queue.set_policy("a", group_concurrency=1)
    queue.set_policy("b", group_concurrency=1)
    leases = queue.claim(["a", "b"], worker="w1", limit=10, now=at(0))
    assert sorted(lease.queue for lease in leases) == ["a", "b"]


def test_an_expired_lease_holds_no_group_slot(queue: Any) -> None:
    a1, a2 = queue.enqueue_many("jobs", [1, 2], group="a", max_attempts=1, now=at(0))
    queue.set_policy("jobs", group_concurrency=1)
    claim_one(queue, t=0, lease_seconds=10)
    assert queue.claim("jobs", worker="w1", now=at(9.999)) == []
    assert claim_one(queue, t=10).id == a2
    assert status_of(queue, a1) == "dead"


# -- rate and group_rate --------------------------------------------------------------------
def test_rate_counts_claims_in_the_window_ending_now(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(10)), now=at(0))
    queue.set_policy("jobs", rate=(2, 10))
    assert len(queue.claim("jobs", worker="w1", limit=5, now=at(0))) == 2
    assert queue.claim("jobs", worker="w1", limit=5, now=at(5)) == []
    assert queue.claim("jobs", worker="w1", limit=5, now=at(9.999)) == []
    # The window is (now - 10, now]: the claims at 0 are out of it at exactly 10.
    assert len(queue.claim("jobs", worker="w1", limit=5, now=at(10))) == 2
    assert queue.claim("jobs", worker="w1", limit=5, now=at(19.999)) == []


def test_rate_counts_each_item_at_its_claims_time(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(10)), now=at(0))
    queue.set_policy("jobs", rate=(3, 10))
    claim_one(queue, t=0)
    claim_one(queue, t=4)
    claim_one(queue, t=8)
    assert queue.claim("jobs", worker="w1", limit=5, now=at(9)) == []
    assert len(queue.claim("jobs", worker="w1", limit=5, now=at(10))) == 1  # 0 left the window
    assert queue.claim("jobs", worker="w1", limit=5, now=at(13.999)) == []
    assert len(queue.claim("jobs", worker="w1", limit=5, now=at(14))) == 1  # 4 left


def test_rate_counts_claims_not_live_leases(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(5)), now=at(0))
    queue.set_policy("jobs", rate=(1, 60))
    lease = claim_one(queue, t=0)
    queue.complete(lease, now=at(1))  # a completion frees no rate
    assert queue.claim("jobs", worker="w1", now=at(1)) == []
    assert len(queue.claim("jobs", worker="w1", limit=5, now=at(60))) == 1


def test_a_reclaim_of_an_expired_item_counts_as_a_claim(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, max_attempts=5, now=at(0))
    queue.enqueue("jobs", 2, now=at(1))
    queue.set_policy("jobs", rate=(2, 100))
    claim_one(queue, t=0, lease_seconds=10)
    assert claim_one(queue, t=10, lease_seconds=10).id == item_id  # the expired item again
    assert queue.claim("jobs", worker="w1", now=at(11)) == []  # two claims in the window


def test_group_rate_counts_each_groups_claims_apart(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(4)), group="a", now=at(0))
    queue.enqueue_many("jobs", list(range(4)), group="b", now=at(0))
    queue.set_policy("jobs", group_rate=(1, 10))
    assert groups(queue.claim("jobs", worker="w1", limit=10, now=at(0))) == {"a": 1, "b": 1}
    assert queue.claim("jobs", worker="w1", limit=10, now=at(9.999)) == []
    queue.enqueue("jobs", "c", group="c", now=at(5))
    assert groups(queue.claim("jobs", worker="w1", limit=10, now=at(5))) == {"c": 1}
    assert groups(queue.claim("jobs", worker="w1", limit=10, now=at(10))) == {"a": 1, "b": 1}


def test_rate_and_group_rate_together(queue: Any) -> None:
    for group in ("a", "b", "c"):
        queue.enqueue_many("jobs", list(range(3)), group=group, now=at(0))
    queue.set_policy("jobs", rate=(4, 10), group_rate=(2, 10))
    first = queue.claim("jobs", worker="w1", limit=10, now=at(0))
    assert len(first) == 4 and max(groups(first).values()) <= 2
    assert queue.claim("jobs", worker="w1", limit=10, now=at(9)) == []
    second = queue.claim("jobs", worker="w1", limit=10, now=at(10))
    assert len(second) == 4 and max(groups(second).values()) <= 2


# -- pause and resume -------------------------------------------------------------------------
def test_a_paused_queue_gives_nothing_and_its_leases_run_on(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(6)), max_attempts=3, now=at(0))
    held = queue.claim("jobs", worker="w1", limit=4, lease_seconds=30, now=at(0))
    queue.pause("jobs")
    assert queue.claim("jobs", worker="w2", limit=10, now=at(1)) == []
    renewed = queue.heartbeat(held[0], extend=60, now=at(2))
    assert renewed.expires_at == at(62)
    queue.complete(held[0], now=at(3))
    queue.release(held[1], now=at(3))
    assert queue.fail(held[2], "boom", now=at(3)) is Status.QUEUED
    assert queue.fail(held[3], "boom", retry=False, now=at(3)) is Status.DEAD
    assert queue.claim("jobs", worker="w2", limit=10, now=at(500)) == []
    assert queue.stats("jobs", now=at(500)).queued == 4


def test_enqueue_into_a_paused_queue_works_and_resume_lets_claims_take_it(queue: Any) -> None:
    queue.pause("jobs")
    item_id = queue.enqueue("jobs", 1, now=at(0))
    more = queue.enqueue_many("jobs", [2, 3], group="g", now=at(0))
    assert status_of(queue, item_id) == "queued"
    assert queue.claim("jobs", worker="w1", limit=10, now=at(0)) == []
    queue.resume("jobs")
    assert sorted(ids(queue.claim("jobs", worker="w1", limit=10, now=at(1)))) == [item_id, *more]


def test_pause_stops_only_its_own_queue(queue: Any) -> None:
    queue.enqueue("a", 1, now=at(0))
    b = queue.enqueue("b", 2, now=at(0))
    queue.pause("a")
    assert ids(queue.claim(["a", "b"], worker="w1", limit=10, now=at(0))) == [b]


def test_an_expired_lease_of_a_paused_queue_is_not_given_again(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, max_attempts=5, now=at(0))
    claim_one(queue, t=0, lease_seconds=10)
    queue.pause("jobs")
    assert queue.claim("jobs", worker="w2", now=at(20)) == []
    queue.resume("jobs")
    assert claim_one(queue, t=21).id == item_id


# -- complete_and_claim ---------------------------------------------------------------------
def test_complete_and_claim_counts_the_slots_its_completions_free(queue: Any) -> None:
    item_ids = queue.enqueue_many("jobs", list(range(8)), now=at(0))
    queue.set_policy("jobs", concurrency=2)
    held = queue.claim("jobs", worker="w1", limit=2, now=at(0))
    lost, leases = queue.complete_and_claim(held, "jobs", worker="w1", limit=5, now=at(1))
    assert lost == [] and ids(leases) == item_ids[2:4]
    lost, leases = queue.complete_and_claim(leases[:1], "jobs", worker="w1", limit=5, now=at(2))
    assert lost == [] and ids(leases) == [item_ids[4]]
    assert queue.complete_and_claim([], "jobs", worker="w1", limit=5, now=at(3)) == ([], [])


def test_complete_and_claim_obeys_group_concurrency(queue: Any) -> None:
    a = queue.enqueue_many("jobs", [1, 2, 3], group="a", now=at(0))
    queue.enqueue_many("jobs", [1, 2, 3], group="b", now=at(0))
    queue.set_policy("jobs", group_concurrency=1)
    held = queue.claim("jobs", worker="w1", limit=10, now=at(0))
    assert groups(held) == {"a": 1, "b": 1}
    done = [lease for lease in held if lease.group == "a"]
    _, leases = queue.complete_and_claim(done, "jobs", worker="w1", limit=10, now=at(1))
    assert ids(leases) == [a[1]]


def test_complete_and_claim_obeys_rate(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(5)), now=at(0))
    queue.set_policy("jobs", rate=(2, 10))
    held = queue.claim("jobs", worker="w1", limit=5, now=at(0))
    assert len(held) == 2
    lost, leases = queue.complete_and_claim(held, "jobs", worker="w1", limit=5, now=at(1))
    assert (lost, leases) == ([], [])
    assert [status_of(queue, lease.id) for lease in held] == ["done", "done"]
    _, leases = queue.complete_and_claim([], "jobs", worker="w1", limit=5, now=at(10))
    assert len(leases) == 2


def test_complete_and_claim_on_a_paused_queue_completes_and_claims_nothing(queue: Any) -> None:
    queue.enqueue_many("jobs", [1, 2, 3], now=at(0))
    held = queue.claim("jobs", worker="w1", limit=1, now=at(0))
    queue.pause("jobs")
    lost, leases = queue.complete_and_claim(held, "jobs", worker="w1", limit=5, now=at(1))
    assert (lost, leases) == ([], [])
    assert status_of(queue, held[0].id) == "done"


def test_a_lost_completion_frees_no_slot(queue: Any) -> None:
    queue.enqueue_many("jobs", [1, 2, 3], max_attempts=5, now=at(0))
    queue.set_policy("jobs", concurrency=1)
    old = claim_one(queue, t=0, lease_seconds=10)
    newer = claim_one(queue, t=10, lease_seconds=100, worker="w2")  # old's item, taken again
    assert newer.id == old.id
    lost, leases = queue.complete_and_claim([old], "jobs", worker="w1", limit=5, now=at(11))
    assert (lost, leases) == ([old], [])


# -- next_due: the rate window's end (a backend verb, so through Queue.backend) --------------
def test_next_due_gives_the_end_of_a_full_rate_window(store_url: str, settings: Settings) -> None:
    with Queue(store_url, settings=settings) as q:
        q.enqueue_many("jobs", list(range(5)), now=at(0))
        q.set_policy("jobs", rate=(2, 10))
        claim_one(q, t=1, lease_seconds=1_000)
        claim_one(q, t=3, lease_seconds=1_000)
        # Full until the claim at 1 leaves the window (1, 11] at 11; leases expire at 1001.
        assert q.backend.next_due(["jobs"], now=at(5)) == at(11)
        claim_one(q, t=11, lease_seconds=1_000)
        assert q.backend.next_due(["jobs"], now=at(12)) == at(13)


def test_next_due_gives_the_end_of_a_full_group_rate_window(
    store_url: str, settings: Settings
) -> None:
    with Queue(store_url, settings=settings) as q:
        q.enqueue_many("jobs", [1, 2], group="a", now=at(0))
        q.set_policy("jobs", group_rate=(1, 10))
        claim_one(q, t=2, lease_seconds=1_000)
        assert q.backend.next_due(["jobs"], now=at(5)) == at(12)
        assert claim_one(q, t=12, lease_seconds=1_000).group == "a"
