"""Flow control, the fair order: round-robin across groups within one priority, the groups served
least recently first, and the plain `(priority, run_at, id)` order kept without groups
(docs/contract.md, "Flow control", "Fair order")."""

from __future__ import annotations

from typing import Any

from tests.contract.helpers import at, claim_one
from workclaim import Lease


def ids(leases: list[Lease]) -> list[int]:
    """The items' ids, in the batch's order."""
    return [lease.id for lease in leases]


def test_a_batch_takes_groups_round_robin(queue: Any) -> None:
    a1, a2, a3 = queue.enqueue_many("jobs", ["a1", "a2", "a3"], group="a", now=at(0))
    b1 = queue.enqueue("jobs", "b1", group="b", now=at(1))
    b2 = queue.enqueue("jobs", "b2", group="b", now=at(2))
    c1 = queue.enqueue("jobs", "c1", group="c", now=at(3))
    leases = queue.claim("jobs", worker="w1", limit=10, now=at(4))
    assert ids(leases) == [a1, b1, c1, a2, b2, a3]
    tokens = [lease.token for lease in leases]
    assert tokens == sorted(tokens)


def test_the_default_group_takes_its_turn_like_any_other(queue: Any) -> None:
    d1, d2 = queue.enqueue_many("jobs", ["d1", "d2"], now=at(0))
    g1, g2 = queue.enqueue_many("jobs", ["g1", "g2"], group="g", now=at(1))
    assert ids(queue.claim("jobs", worker="w1", limit=10, now=at(2))) == [d1, g1, d2, g2]


def test_groups_never_served_rank_by_their_items_run_at_then_id(queue: Any) -> None:
    late = queue.enqueue("jobs", "late", group="late", now=at(0), delay=5)
    b = queue.enqueue("jobs", "b", group="b", now=at(1))
    a = queue.enqueue("jobs", "a", group="a", now=at(1))  # same run_at as b, higher id
    c = queue.enqueue("jobs", "c", group="c", run_at=at(-10), now=at(2))
    assert ids(queue.claim("jobs", worker="w1", limit=10, now=at(10))) == [c, b, a, late]


def test_successive_claims_start_with_the_group_served_least_recently(queue: Any) -> None:
    queue.enqueue_many("jobs", ["a1", "a2"], group="a", now=at(0))
    queue.enqueue_many("jobs", ["b1", "b2"], group="b", now=at(1))
    queue.enqueue("jobs", "c1", group="c", now=at(2))
    first = queue.claim("jobs", worker="w1", limit=10, now=at(3))
    assert [lease.payload for lease in first] == ["a1", "b1", "c1", "a2", "b2"]
    # Greatest tokens now: c (c1) < a (a2) < b (b2). New work in every group, oldest in a:
    a3 = queue.enqueue("jobs", "a3", group="a", now=at(4))
    b3 = queue.enqueue("jobs", "b3", group="b", now=at(5))
    c2 = queue.enqueue("jobs", "c2", group="c", now=at(6))
    assert ids(queue.claim("jobs", worker="w1", limit=10, now=at(7))) == [c2, a3, b3]


def test_single_claims_rotate_over_the_groups(queue: Any) -> None:
    for group in ("x", "y", "z"):
        queue.enqueue_many("jobs", [f"{group}{n}" for n in range(3)], group=group, now=at(0))
    taken = [claim_one(queue, t=1).payload for _ in range(9)]
    assert taken == ["x0", "y0", "z0", "x1", "y1", "z1", "x2", "y2", "z2"]


def test_a_one_item_group_is_served_within_one_round_beside_a_deep_group(queue: Any) -> None:
    queue.enqueue_many("jobs", list(range(200)), group="deep", now=at(0))
    first = claim_one(queue, t=1)
    assert first.group == "deep"
    lone = queue.enqueue("jobs", "lone", group="lone", now=at(2))
    # Never served, the lone group ranks first, however many items the deep one holds.
    assert claim_one(queue, t=3).id == lone
    queue.enqueue("jobs", "lone-2", group="lone", now=at(4))
    # Now lone was served last: deep's turn, then lone's again.
    assert [claim_one(queue, t=5).group for _ in range(3)] == ["deep", "lone", "deep"]


def test_a_lone_item_comes_second_in_a_batch_beside_a_deep_group(queue: Any) -> None:
    deep = queue.enqueue_many("jobs", list(range(50)), group="deep", now=at(0))
    lone = queue.enqueue("jobs", "lone", group="lone", now=at(1))
    assert ids(queue.claim("jobs", worker="w1", limit=3, now=at(2))) == [deep[0], lone, deep[1]]


def test_priority_comes_before_the_round_robin(queue: Any) -> None:
    a1, a2 = queue.enqueue_many("jobs", ["a1", "a2"], group="a", priority=0, now=at(0))
    b_low = queue.enqueue("jobs", "b-low", group="b", priority=1, now=at(1))
    b_high = queue.enqueue("jobs", "b-high", group="b", priority=0, now=at(2))
    urgent = queue.enqueue("jobs", "urgent", group="c", priority=-1, now=at(3))
    # k counts an item's place among its group's items of the same priority: b-high is b's
    # first of priority 0 though b-low came before it.
    leases = queue.claim("jobs", worker="w1", limit=10, now=at(4))
    assert ids(leases) == [urgent, a1, b_high, a2, b_low]


def test_only_claimable_items_take_a_place_in_the_round(queue: Any) -> None:
    a1, a2, a3 = queue.enqueue_many("jobs", ["a1", "a2", "a3"], group="a", now=at(0))
    queue.enqueue("jobs", "a-later", group="a", delay=100, now=at(0))
    assert claim_one(queue, t=1).id == a1
    b1, b2 = queue.enqueue_many("jobs", ["b1", "b2"], group="b", now=at(2))
    # a1 is leased, a-later not due: a2 is a's first claimable item, b1 b's (b never served).
    assert ids(queue.claim("jobs", worker="w1", limit=10, now=at(3))) == [b1, a2, b2, a3]


def test_items_the_limits_refuse_are_skipped_in_the_fair_order(queue: Any) -> None:
    a = queue.enqueue_many("jobs", ["a1", "a2", "a3"], group="a", now=at(0))
    b = queue.enqueue_many("jobs", ["b1", "b2", "b3"], group="b", now=at(1))
    c = queue.enqueue_many("jobs", ["c1"], group="c", now=at(2))
    queue.set_policy("jobs", group_concurrency=2)
    leases = queue.claim("jobs", worker="w1", limit=10, now=at(3))
    assert ids(leases) == [a[0], b[0], c[0], a[1], b[1]]


def test_one_group_keeps_the_plain_order(queue: Any) -> None:
    late = queue.enqueue("jobs", "late", group="g", priority=0, now=at(5))
    low = queue.enqueue("jobs", "low", group="g", priority=5, now=at(0))
    early = queue.enqueue("jobs", "early", group="g", priority=0, now=at(1))
    urgent = queue.enqueue("jobs", "urgent", group="g", priority=-3, now=at(9))
    tie = queue.enqueue("jobs", "tie", group="g", priority=0, now=at(1))
    leases = queue.claim("jobs", worker="w1", limit=10, now=at(10))
    assert ids(leases) == [urgent, early, tie, late, low]


def test_without_groups_the_order_is_unchanged_even_under_limits(queue: Any) -> None:
    item_ids = queue.enqueue_many("jobs", list(range(6)), now=at(0))
    queue.set_policy("jobs", concurrency=4, rate=(100, 1))
    assert ids(queue.claim("jobs", worker="w1", limit=3, now=at(1))) == item_ids[:3]
    assert ids(queue.claim("jobs", worker="w1", limit=3, now=at(1))) == item_ids[3:4]


def test_without_groups_several_queues_keep_the_plain_order(queue: Any) -> None:
    # Issue 15: "Without groups, today's (priority, run_at, id) order is unchanged", also
    # across the queues of one claim (each queue's default group is not a turn of its own).
    a = queue.enqueue_many("a", ["a1", "a2", "a3"], now=at(0))
    b = queue.enqueue("b", "b1", now=at(1))
    assert ids(queue.claim(["a", "b"], worker="w1", limit=10, now=at(2))) == [*a, b]


def test_without_groups_several_queues_keep_the_plain_order_under_limits(queue: Any) -> None:
    # Issue 15: "Without groups, today's (priority, run_at, id) order is unchanged", limits or
    # not: a policy on one of the queues does not make each queue's default group a turn.
    queue.set_policy("a", concurrency=10)
    a = queue.enqueue_many("a", ["a1", "a2", "a3"], now=at(0))
    b = queue.enqueue_many("b", ["b1", "b2"], now=at(1))
    assert ids(queue.claim(["a", "b"], worker="w1", limit=4, now=at(2))) == [*a, b[0]]


def test_without_groups_several_queues_skip_what_the_limits_refuse_in_plain_order(
    queue: Any,
) -> None:
    queue.set_policy("a", concurrency=2)
    a = queue.enqueue_many("a", ["a1", "a2", "a3"], now=at(0))
    b = queue.enqueue_many("b", ["b1", "b2"], now=at(1))
    leases = queue.claim(["a", "b"], worker="w1", limit=10, now=at(3))
    assert ids(leases) == [a[0], a[1], *b]  # a3: the limit refuses it
    tokens = [lease.token for lease in leases]
    assert tokens == sorted(tokens)


def test_without_groups_a_queue_served_before_keeps_its_place_in_the_plain_order(
    queue: Any,
) -> None:
    # The plain order ranks by (priority, run_at, id) only: a queue whose default group was
    # served before does not wait behind another queue's never-served items.
    queue.set_policy("a", concurrency=10)
    a = queue.enqueue_many("a", ["a1", "a2", "a3"], now=at(0))
    assert claim_one(queue, "a", t=1).id == a[0]
    b = queue.enqueue("b", "b1", now=at(2))
    assert ids(queue.claim(["a", "b"], worker="w1", limit=10, now=at(3))) == [a[1], a[2], b]


def test_one_grouped_queue_among_several_keeps_the_fair_order(queue: Any) -> None:
    # Whichever place the grouped queue has in the claim's list.
    for grouped, limited in (("g1", "p1"), ("g2", "p2")):
        queue.set_policy(limited, concurrency=10)
        x = queue.enqueue_many(grouped, ["x1", "x2"], group="x", now=at(0))
        p = queue.enqueue_many(limited, ["y1", "y2"], now=at(1))
        order = [grouped, limited] if grouped == "g1" else [limited, grouped]
        leases = queue.claim(order, worker="w1", limit=10, now=at(2))
        assert ids(leases) == [x[0], p[0], x[1], p[1]]


def test_groups_of_several_queues_take_turns_as_groups_of_their_own_queue(queue: Any) -> None:
    q1a = queue.enqueue_many("q1", ["q1a1", "q1a2"], group="a", now=at(0))
    q2a = queue.enqueue("q2", "q2a1", group="a", now=at(1))
    q1b = queue.enqueue("q1", "q1b1", group="b", now=at(2))
    # "a" of q1 and "a" of q2 are two groups: each has a first item.
    leases = queue.claim(["q1", "q2"], worker="w1", limit=10, now=at(3))
    assert ids(leases) == [q1a[0], q2a, q1b, q1a[1]]
    assert [lease.queue for lease in leases] == ["q1", "q2", "q1", "q1"]


def test_serving_a_group_in_one_queue_does_not_rank_its_namesake_in_another(queue: Any) -> None:
    queue.enqueue("q1", "q1-x", group="x", now=at(0))
    claim_one(queue, "q1", t=1)  # x of q1 served; x of q2 never was
    y = queue.enqueue("q2", "q2-y", group="y", now=at(2))
    x = queue.enqueue("q2", "q2-x", group="x", now=at(3))
    assert claim_one(queue, "q2", t=4).id == y  # y's item is older than x's
    z = queue.enqueue("q2", "q2-z", group="z", now=at(5))
    y2 = queue.enqueue("q2", "q2-y2", group="y", now=at(6))
    # In q2: x and z never served (x's item is older), y served last.
    assert ids(queue.claim("q2", worker="w1", limit=10, now=at(7))) == [x, z, y2]


def test_claims_before_a_queue_used_groups_count_as_its_default_groups_service(
    queue: Any,
) -> None:
    # "Ranked by the greatest lease token the store ever issued to an item of theirs": the
    # default group was served while the queue had no other group, so a new group, never
    # served, ranks before it.
    d1, d2 = queue.enqueue_many("jobs", ["d1", "d2"], now=at(0))
    assert claim_one(queue, t=1).id == d1
    g = queue.enqueue("jobs", "g", group="g", now=at(2))
    assert ids(queue.claim("jobs", worker="w1", limit=2, now=at(3))) == [g, d2]
