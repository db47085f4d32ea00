"""MariaDB flow control beyond the contract suite: claimers in many processes arriving together
at one free slot (the policy row lock), groups that ran dry leaving the walk and coming back,
and an enqueue in flight keeping its group in the walk."""

from __future__ import annotations

import multiprocessing as mp
import threading
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import MySQLdb
import pytest

from tests.support.servers import mariadb_url
from workclaim import Queue, Settings
from workclaim.backends.mariadb.connection import connect, cursor, parse_url, session

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return mariadb_url(request, tmp_path)


def _sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    """One statement on a session of the test's own (autocommit)."""
    conn = connect(parse_url(url, Settings()))
    try:
        cur = cursor(conn)
        cur.execute(statement)
        return list(cur.fetchall())
    finally:
        conn.close()


def _claim_in_rounds(
    url: str, queues: list[str], barrier: Barrier, out: mp.Queue[tuple[str, list[int]]], who: str
) -> None:
    taken: list[int] = []
    with Queue(url) as q:
        for queue in queues:
            barrier.wait()
            taken.append(len(q.claim(queue, worker=who, limit=3, lease_seconds=600)))
    out.put((who, taken))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("limit", ["concurrency", "group_concurrency"])
def test_claimers_arriving_together_at_one_free_slot_take_exactly_one_item(
    url: str, limit: str
) -> None:
    """Each round, PROCESSES claimers in their own processes claim together from a queue whose
    limit of 2 has one slot left (the other held by a live lease): exactly one item is given
    per round, whatever the interleaving of their transactions (fails without the policy row
    lock: two claims both count the free slot)."""
    rounds, processes = 12, 6
    queues = [f"jobs-{n}" for n in range(rounds)]
    with Queue(url) as q:
        for queue in queues:
            q.enqueue_many(queue, list(range(10)), group="tenant")
            if limit == "concurrency":
                q.set_policy(queue, concurrency=2)
            else:
                q.set_policy(queue, group_concurrency=2)
            assert len(q.claim(queue, worker="holder", lease_seconds=300, limit=1)) == 1
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_claim_in_rounds, args=(url, queues, barrier, out, f"w{n}"))
        for n in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=200) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    per_round = [sum(taken[r] for _, taken in results) for r in range(rounds)]
    assert per_round == [1] * rounds
    with Queue(url) as q:
        assert [q.stats(queue).claimed for queue in queues] == [2] * rounds


def _active(url: str) -> set[str]:
    rows = _sql(url, "SELECT grp FROM workclaim_groups WHERE queue = 'a' AND active = 1")
    return {str(row[0]) for row in rows}


def test_a_claim_skips_groups_that_ran_dry(url: str) -> None:
    """A named group a claim finds without queued items leaves the served-order walk until an
    item of it is queued again; the default group never leaves it."""
    with Queue(url) as q:
        for n in range(20):
            q.enqueue("a", n, group=f"g{n}", now=at(0))
        for lease in q.claim("a", worker="w", limit=100, now=at(1)):
            q.complete(lease, now=at(1))
        assert len(_active(url)) == 21  # their last items were taken: not yet seen dry
        q.enqueue("a", "again", group="g7", now=at(3))
        assert [x.group for x in q.claim("a", worker="w", limit=100, now=at(4))] == ["g7"]
        assert _active(url) <= {"g7", ""}  # the walk met the others dry and dropped them
        q.enqueue("a", "more", group="g9", now=at(5))
        [lease] = q.claim("a", worker="w", now=at(6))
        q.release(lease, now=at(6))  # a group holding a lease stays in the walk
        assert "g9" in _active(url)
        assert [x.group for x in q.claim("a", worker="w", now=at(7))] == ["g9"]


def test_a_requeued_item_brings_its_dry_group_back_into_the_walk(url: str) -> None:
    with Queue(url) as q:
        dead = q.enqueue("a", "x", group="d", max_attempts=1, now=at(0))
        [lease] = q.claim("a", worker="w", now=at(1))
        q.fail(lease, "boom", retry=False, now=at(1))
        q.enqueue("a", "y", group="e", now=at(2))
        [other] = q.claim("a", worker="w", limit=10, now=at(3))  # meets "d" dry
        assert other.group == "e"
        assert "d" not in _active(url)
        q.requeue(dead, now=at(4))
        assert [x.id for x in q.claim("a", worker="w", limit=10, now=at(5))] == [dead]


def test_an_enqueue_in_flight_keeps_its_group_in_the_walk(url: str) -> None:
    """A claim that meets a named group dry while an enqueue into it has not committed yet (a
    caller's transaction) leaves the group in the walk: once the enqueue commits, its item is
    claimed (fails when the enqueue reads its groups' rows without the shared lock: the claim
    then takes the group out of the walk under the item)."""
    target = parse_url(url, Settings())
    with Queue(url) as q:
        q.enqueue("a", "x", group="g", now=at(0))
        [lease] = q.claim("a", worker="w", now=at(1))
        q.complete(lease, now=at(1))
        q.enqueue("a", "y", group="h", now=at(2))
        raw = MySQLdb.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            database=target.database,
            charset="utf8mb4",
            autocommit=False,
        )
        caller = session(raw)
        try:
            [late] = q.enqueue_many("a", ["z"], group="g", connection=raw, now=at(3))
            claimed = q.claim("a", worker="w", limit=10, now=at(4))  # meets "g" dry
            assert [x.group for x in claimed] == ["h"]
            assert "g" in _active(url)
            caller.commit()
        finally:
            caller.close()
        assert [x.id for x in q.claim("a", worker="w", limit=10, now=at(5))] == [late]


def _free_the_slot(q: Queue, lease: Any, how: str) -> None:
    """End `lease` (or lift the limit) in one of the ways that free a slot."""
    if how == "complete":
        q.complete(lease)
    elif how == "fail":
        q.fail(lease, "no", retry=False)
    elif how == "complete_and_claim":
        assert q.complete_and_claim([lease], "jobs", worker=lease.worker, limit=0) == ([], [])
    elif how == "set_policy":
        q.set_policy("jobs", concurrency=2)
    else:
        assert how == "resume"
        q.resume("jobs")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["complete", "fail", "complete_and_claim", "set_policy", "resume"])
def test_a_freed_slot_wakes_a_claim_waiting_on_a_limited_queue(url: str, how: str) -> None:
    """A claim waits on a queue at its concurrency limit (the one lease lasts far longer than the
    wait and the test): the slot freed through another Queue (another backend: no in-process
    wake-up) wakes it through the change signal its poller reads."""
    with Queue(url) as waiter_q, Queue(url) as other:
        other.set_policy("jobs", concurrency=1)
        first, second = other.enqueue_many("jobs", [1, 2])
        [lease] = other.claim("jobs", worker="w1", lease_seconds=900)
        if how == "resume":
            other.complete(lease)
            other.pause("jobs")
        parked = threading.Event()
        # Start the waiter's poller first and let its first look pass, so that only a moved
        # signal can end the wait below.
        wakeup = waiter_q.backend.wakeup()
        before = wakeup.generation()
        waiter_q.claim("warm-up", worker="w2", wait=0.01)
        while wakeup.generation() == before:
            parked.wait(0.01)

        def free_once_waiting() -> None:
            while wakeup.waiting == 0:
                parked.wait(0.01)
            _free_the_slot(other, lease, how)

        helper = threading.Thread(target=free_once_waiting)
        helper.start()
        try:
            leases = waiter_q.claim("jobs", worker="w2", wait=600)
        finally:
            helper.join()
    assert [le.id for le in leases] == [second]
    assert lease.id == first
