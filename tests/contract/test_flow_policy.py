"""Flow control, the stored parts: groups on items and leases, the policy's round trip, pause and
resume as flags, bad input, and the busiest groups (docs/contract.md, "Flow control")."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.contract.helpers import at, claim_one
from workclaim import GroupLeases, QueuePolicy, Rate, Status, ValidationError

BAD_GROUPS = ["", "bad group", "-starts-with-punctuation", "x" * 129, 42, b"bytes", ["a"]]


# -- groups on items and leases -------------------------------------------------------------
def test_an_items_group_is_stored_and_returned_on_the_item_and_its_lease(queue: Any) -> None:
    grouped = queue.enqueue("jobs", 1, group="tenant-42", now=at(0))
    default = queue.enqueue("jobs", 2, now=at(1))
    assert queue.get(grouped).group == "tenant-42"
    assert queue.get(default).group is None
    leases = queue.claim("jobs", worker="w1", limit=2, now=at(2))
    assert [(lease.id, lease.group) for lease in leases] == [
        (grouped, "tenant-42"),
        (default, None),
    ]
    listed = {item.id: item.group for item in queue.items("jobs", Status.CLAIMED)}
    assert listed == {grouped: "tenant-42", default: None}


def test_group_none_is_the_default_group(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, group=None, now=at(0))
    assert queue.get(item_id).group is None
    assert claim_one(queue, t=0).group is None


def test_enqueue_many_puts_every_item_in_the_group(queue: Any) -> None:
    ids = queue.enqueue_many("jobs", [1, 2, 3], group="batch.7", now=at(0))
    assert [queue.get(i).group for i in ids] == ["batch.7"] * 3
    leases = queue.claim("jobs", worker="w1", limit=3, now=at(0))
    assert [lease.group for lease in leases] == ["batch.7"] * 3


def test_an_items_group_never_changes_across_its_attempts(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, group="g", max_attempts=5, now=at(0))
    first = claim_one(queue, t=0, lease_seconds=10)
    queue.release(first, now=at(1))
    second = claim_one(queue, t=1, lease_seconds=10)
    queue.fail(second, "boom", now=at(2))  # retried after the 10 s backoff
    third = claim_one(queue, t=12, lease_seconds=10)
    fourth = claim_one(queue, t=22, lease_seconds=10)  # third's lease expired
    assert [lease.group for lease in (first, second, third, fourth)] == ["g"] * 4
    queue.fail(fourth, "dead", retry=False, now=at(23))
    queue.requeue(item_id, now=at(24))
    assert queue.get(item_id).group == "g"
    assert claim_one(queue, t=24).group == "g"


def test_a_dedupe_hit_returns_the_holder_and_keeps_its_group(queue: Any) -> None:
    first = queue.enqueue("jobs", 1, dedupe_key="k", group="a", now=at(0))
    again = queue.enqueue("jobs", 2, dedupe_key="k", group="b", now=at(1))
    assert again == first
    assert queue.get(first).group == "a"
    assert queue.stats("jobs").queued == 1


@pytest.mark.parametrize("group", BAD_GROUPS)
def test_a_bad_group_is_refused_and_nothing_is_enqueued(queue: Any, group: Any) -> None:
    with pytest.raises(ValidationError, match="group"):
        queue.enqueue("jobs", 1, group=group, now=at(0))
    with pytest.raises(ValidationError, match="group"):
        queue.enqueue_many("jobs", [1, 2], group=group, now=at(0))
    assert queue.stats("jobs").queued == 0
    assert queue.claim("jobs", worker="w1", now=at(0)) == []


def test_a_group_name_may_use_every_name_character(queue: Any) -> None:
    for group in ("a", "Z9", "t.42:x-y_z", "x" * 128):
        assert queue.get(queue.enqueue("jobs", group, group=group, now=at(0))).group == group


# -- the policy ---------------------------------------------------------------------------
def test_a_queue_never_given_a_policy_has_no_limits_and_is_not_paused(queue: Any) -> None:
    assert queue.policy("never-seen") == QueuePolicy("never-seen")
    queue.enqueue("jobs", 1, now=at(0))
    policy = queue.policy("jobs")
    assert policy == QueuePolicy(
        "jobs", concurrency=None, group_concurrency=None, rate=None, group_rate=None, paused=False
    )
    assert not policy.limited


def test_set_policy_stores_all_four_limits_and_returns_them(queue: Any) -> None:
    stored = queue.set_policy(
        "jobs", concurrency=64, group_concurrency=3, rate=(100, 60), group_rate=Rate(5, 1.5)
    )
    expected = QueuePolicy("jobs", 64, 3, Rate(100, 60.0), Rate(5, 1.5), paused=False)
    assert stored == expected
    assert queue.policy("jobs") == expected
    assert isinstance(stored.rate, Rate) and stored.limited


def test_set_policy_replaces_all_four_limits_none_lifting_one(queue: Any) -> None:
    queue.set_policy("jobs", concurrency=5, group_concurrency=2, rate=(10, 1), group_rate=(1, 1))
    assert queue.set_policy("jobs", group_concurrency=7) == QueuePolicy("jobs", group_concurrency=7)
    assert queue.policy("jobs") == QueuePolicy("jobs", group_concurrency=7)
    assert queue.set_policy("jobs") == QueuePolicy("jobs")
    assert not queue.policy("jobs").limited


def test_policies_belong_to_their_queue(queue: Any) -> None:
    queue.set_policy("a", concurrency=1)
    queue.pause("b")
    assert queue.policy("a") == QueuePolicy("a", concurrency=1)
    assert queue.policy("b") == QueuePolicy("b", paused=True)
    assert queue.policy("c") == QueuePolicy("c")


def test_the_bounds_of_a_policy_are_accepted(queue: Any) -> None:
    stored = queue.set_policy(
        "jobs",
        concurrency=1,
        group_concurrency=1_000_000,
        rate=(1_000_000, 86_400),
        group_rate=(1, 0.001),
    )
    assert stored == QueuePolicy("jobs", 1, 1_000_000, Rate(1_000_000, 86_400.0), Rate(1, 0.001))
    assert queue.policy("jobs") == stored


def test_pause_and_resume_set_the_flag_and_keep_the_limits(queue: Any) -> None:
    queue.set_policy("jobs", concurrency=4, rate=(3, 10))
    paused = QueuePolicy("jobs", concurrency=4, rate=Rate(3, 10.0), paused=True)
    running = QueuePolicy("jobs", concurrency=4, rate=Rate(3, 10.0), paused=False)
    assert queue.pause("jobs") == paused
    assert queue.pause("jobs") == paused  # idempotent
    assert queue.policy("jobs") == paused and paused.limited
    assert queue.resume("jobs") == running
    assert queue.resume("jobs") == running
    assert queue.policy("jobs") == running


def test_set_policy_keeps_the_paused_flag(queue: Any) -> None:
    queue.pause("jobs")
    assert queue.set_policy("jobs", concurrency=2) == QueuePolicy("jobs", 2, paused=True)
    assert queue.set_policy("jobs") == QueuePolicy("jobs", paused=True)
    assert queue.policy("jobs").paused
    assert queue.claim("jobs", worker="w1", now=at(0)) == []


def test_a_queue_never_seen_can_be_paused_before_its_first_item(queue: Any) -> None:
    assert queue.pause("later") == QueuePolicy("later", paused=True)
    queue.enqueue("later", 1, now=at(0))
    assert queue.claim("later", worker="w1", now=at(0)) == []


BAD_POLICIES: list[dict[str, Any]] = [
    {"concurrency": 0},
    {"concurrency": -1},
    {"concurrency": 1_000_001},
    {"concurrency": 1.5},
    {"concurrency": True},
    {"concurrency": "3"},
    {"group_concurrency": 0},
    {"group_concurrency": 1_000_001},
    {"rate": (0, 10)},
    {"rate": (1_000_001, 10)},
    {"rate": (1, 0)},
    {"rate": (1, -1)},
    {"rate": (1, 86_400.5)},
    {"rate": (1, math.nan)},
    {"rate": (1, math.inf)},
    {"rate": (1.5, 10)},
    {"rate": (1,)},
    {"rate": (1, 2, 3)},
    {"rate": "10/s"},
    {"rate": 10},
    {"group_rate": (0, 1)},
    {"group_rate": (1, 0)},
    {"group_rate": (1, 86_401)},
    {"concurrency": 5, "group_rate": (1, 0)},  # one bad limit: none of the four is stored
]


@pytest.mark.parametrize("limits", BAD_POLICIES)
def test_a_bad_policy_is_refused_and_changes_nothing(queue: Any, limits: dict[str, Any]) -> None:
    before = queue.set_policy("jobs", concurrency=9, group_concurrency=3, rate=(7, 5))
    queue.pause("jobs")
    with pytest.raises(ValidationError):
        queue.set_policy("jobs", **limits)
    assert queue.policy("jobs") == QueuePolicy(
        "jobs", before.concurrency, before.group_concurrency, before.rate, paused=True
    )


@pytest.mark.parametrize("name", ["", "bad queue", "x" * 129])
def test_flow_verbs_refuse_a_bad_queue_name(queue: Any, name: str) -> None:
    for verb in (queue.policy, queue.pause, queue.resume, queue.live_leases_by_group):
        with pytest.raises(ValidationError):
            verb(name)
    with pytest.raises(ValidationError):
        queue.set_policy(name, concurrency=1)


# -- the busiest groups ---------------------------------------------------------------------
def test_live_leases_by_group_counts_live_leases_busiest_first(queue: Any) -> None:
    queue.enqueue("jobs", "c", group="c", now=at(0))
    claim_one(queue, t=0, lease_seconds=5)  # c's only lease: expired from 5 on, never reaped
    for group, count in (("a", 3), ("b", 1), (None, 1), ("d", 2), ("e", 3)):
        queue.enqueue_many("jobs", list(range(count)), group=group, now=at(1))
    queue.enqueue("jobs", "f", group="f", delay=1_000, now=at(1))  # queued, never claimed
    queue.enqueue_many("other", [1, 2, 3, 4], group="b", now=at(1))
    leases = queue.claim("jobs", worker="w1", limit=100, lease_seconds=100, now=at(1))
    assert len(leases) == 10
    queue.claim("other", worker="w1", limit=4, lease_seconds=100, now=at(1))
    queue.complete(next(lease for lease in leases if lease.group == "e"), now=at(2))
    expected = [
        GroupLeases("a", 3),
        GroupLeases("d", 2),
        GroupLeases("e", 2),
        GroupLeases(None, 1),
        GroupLeases("b", 1),
    ]
    assert queue.live_leases_by_group("jobs", now=at(10)) == expected
    assert queue.live_leases_by_group("jobs", limit=2, now=at(10)) == expected[:2]
    assert queue.live_leases_by_group("other", now=at(10)) == [GroupLeases("b", 4)]
    assert queue.live_leases_by_group("nothing-here", now=at(10)) == []
    # c's lease was live before 5; at 101 every lease has expired.
    assert GroupLeases("c", 1) in queue.live_leases_by_group("jobs", now=at(4.999))
    assert queue.live_leases_by_group("jobs", now=at(101)) == []
    with pytest.raises(ValidationError):
        queue.live_leases_by_group("jobs", limit=0)
