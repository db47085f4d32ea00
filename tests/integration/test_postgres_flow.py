"""PostgreSQL flow control beyond the contract suite: the upgrade of a version-5 store, claimers
in many processes arriving together at one free slot, and what a claim of a grouped queue reads."""

from __future__ import annotations

import multiprocessing as mp
import threading
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.integration._pg import connect
from tests.support.servers import postgres_url
from workclaim import Queue, Settings
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.postgres.connection import parse_url
from workclaim.models import QueuePolicy


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


def _schema(url: str) -> sql.Identifier:
    return sql.Identifier(parse_url(url)[1])


def test_a_version_5_store_upgrades_with_its_items_in_the_default_group(url: str) -> None:
    backend = PostgresBackend(url, Settings())
    try:
        backend.migrate_to(5)
        with connect(url) as conn:  # items as version 5 left them: two queued, one claimed
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.items (queue, payload, status, priority, run_at, "
                    "max_attempts, token, worker, expires_at, lease_length, attempts, "
                    "created_at, updated_at) "
                    "SELECT 'jobs', to_json(n), s, 0, now() - interval '1 minute', 3, "
                    "CASE WHEN s = 'claimed' THEN nextval({}) END, "
                    "CASE WHEN s = 'claimed' THEN 'w0' END, "
                    "CASE WHEN s = 'claimed' THEN now() + interval '1 hour' END, "
                    "CASE WHEN s = 'claimed' THEN interval '1 hour' END, "
                    "CASE WHEN s = 'claimed' THEN 1 ELSE 0 END, now(), now() "
                    "FROM unnest(ARRAY['queued', 'queued', 'claimed']) WITH ORDINALITY AS u (s, n)"
                ).format(
                    _schema(url),
                    sql.Literal(f"{parse_url(url)[1]}.token_seq"),
                )
            )
    finally:
        backend.close()
    with Queue(url) as q:  # migrates to the current version on first use
        q.backend.verify_schema()
        assert [q.get(i).group for i in (1, 2, 3)] == [None, None, None]
        assert q.policy("jobs") == QueuePolicy("jobs")
        assert q.live_leases_by_group("jobs", limit=10)[0].live == 1
        # The one old lease holds the only slot; the old items are the default group's.
        q.set_policy("jobs", concurrency=2)
        leases = q.claim("jobs", worker="w1", limit=5)
        assert [(lease.id, lease.group) for lease in leases] == [(1, None)]
        # A new group ranks before the default group, which was served just now.
        new = q.enqueue("jobs", "new", group="tenant-1")
        q.complete(leases[0])
        assert [lease.id for lease in q.claim("jobs", worker="w1", limit=5)] == [new]


def _claim_in_rounds(url: str, queues: list[str], barrier: Barrier, out: Any, worker: str) -> None:
    """Claim once per queue, all processes released together each round by the barrier."""
    with Queue(url) as q:
        taken = []
        for queue in queues:
            barrier.wait(60)
            taken.append(len(q.claim(queue, worker=worker, lease_seconds=300, limit=3)))
        out.put((worker, taken))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("limit", ["concurrency", "group_concurrency"])
def test_claimers_arriving_together_at_one_free_slot_take_exactly_one_item(
    url: str, limit: str
) -> None:
    """Each round, PROCESSES claimers in their own processes (own connections) claim together
    from a queue whose limit of 2 has one slot left (the other held by a live lease): exactly
    one item is given per round, whatever the interleaving of their transactions."""
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


def _index_entries_read(conn: Any, schema: str, claim: Any) -> int:
    """Index entries the claim function read from the items indexes, in one transaction that
    is rolled back (the transaction-local statistics count them exactly)."""
    names = ["items_claimable", "items_group_claimable"]
    with conn.transaction(force_rollback=True):
        claim()
        row = conn.execute(
            "SELECT sum(pg_stat_get_xact_tuples_returned(to_regclass(%s || '.' || n))) "
            "FROM unnest(%s::text[]) AS n",
            (sql.Identifier(schema).as_string(conn), names),
        ).fetchone()
    return int(row[0])


def test_a_claim_reads_the_heads_of_the_groups_it_serves_not_a_deep_group(url: str) -> None:
    """Group A holds thousands of items, 40 other groups one each, group_concurrency=1: a claim
    of 5 reads a few index entries per group it serves, never A's depth."""
    schema = parse_url(url)[1]
    with Queue(url) as q:
        q.set_policy("jobs", group_concurrency=1)
        for start in range(0, 5000, 1000):
            q.enqueue_many("jobs", list(range(start, start + 1000)), group="A")
        for n in range(40):
            q.enqueue("jobs", n, group=f"g{n:02}")
        # Serve every group once, so none is left never served (a first round walks those).
        while leases := q.claim("jobs", worker="w", limit=50):
            for lease in leases:
                q.complete(lease)
            if q.stats("jobs").queued <= 4960 - 40:
                break
        for n in range(40):
            q.enqueue("jobs", n, group=f"g{n:02}")
        q.enqueue_many("jobs", list(range(5)))  # the default group too
        lease_sql = sql.SQL(
            "SELECT * FROM {}.claim(ARRAY['jobs'], 'w', interval '60 seconds', 5, NULL, 100)"
        ).format(sql.Identifier(schema))
        with connect(url) as conn:
            conn.autocommit = True

            def claim() -> None:
                assert len(conn.execute(lease_sql).fetchall()) == 5

            read = _index_entries_read(conn, schema, claim)
        assert 0 < read <= 5 * 3


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
    wait and the test): the slot freed through another Queue wakes it by NOTIFY."""
    with Queue(url) as waiter_q, Queue(url) as other:
        other.set_policy("jobs", concurrency=1)
        first, second = other.enqueue_many("jobs", [1, 2])
        [lease] = other.claim("jobs", worker="w1", lease_seconds=900)
        if how == "resume":
            other.complete(lease)
            other.pause("jobs")
        parked = threading.Event()
        # Start the waiter's LISTEN connection first and let its one signal on connecting pass,
        # so that only a NOTIFY can end the wait below.
        wakeup = waiter_q.backend.wakeup()
        before = wakeup.generation()
        # The wait must outlast the claim's first look, or it never waits and starts no
        # listener (a first look slower than 10 ms, on a loaded machine, hung this test).
        waiter_q.claim("warm-up", worker="w2", wait=0.5)
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


@pytest.mark.parametrize("queues", [["p", "g"], ["g", "p"]])
def test_one_grouped_queue_among_several_keeps_the_fair_order(url: str, queues: list[str]) -> None:
    """Migration 0011 keeps the plain order across queues only when none of them uses groups:
    here `g` does (a grouped enqueue), so `p`'s default group still takes a turn of its own,
    whichever place `g` has in the claim's list of queues."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with Queue(url) as q:
        q.set_policy("p", concurrency=10)
        p1, p2 = q.enqueue_many("p", ["p1", "p2"], now=t0)
        g1 = q.enqueue("g", "g1", group="x", now=t0 + timedelta(seconds=1))
        leases = q.claim(queues, worker="w", limit=10, now=t0 + timedelta(seconds=2))
        assert [lease.id for lease in leases] == [p1, g1, p2]


def test_without_groups_a_queue_served_before_does_not_wait_for_the_others(url: str) -> None:
    """Migration 0011: across queues none of which uses groups, when each default group was
    served last does not rank (the plain order is (priority, run_at, id) only): `a`, claimed
    from before, still gives its older item first."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with Queue(url) as q:
        q.set_policy("a", concurrency=10)
        q.enqueue("a", "a1", now=t0)
        assert q.claim("a", worker="w", limit=1, now=t0 + timedelta(seconds=1))[0].payload == "a1"
        a2 = q.enqueue("a", "a2", now=t0 + timedelta(seconds=2))
        b1 = q.enqueue("b", "b1", now=t0 + timedelta(seconds=3))
        leases = q.claim(["a", "b"], worker="w", limit=10, now=t0 + timedelta(seconds=4))
        assert [lease.id for lease in leases] == [a2, b1]
