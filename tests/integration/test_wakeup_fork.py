"""A forked child's waiting claim is woken by the store, on every backend.

The parent opens a Queue and uses its wake-up (its listener runs) before it forks; the child
inherits the Queue and waits in `claim(wait=60)`. An enqueue by the parent must wake the child
long before its wait ends: the listener (SQLite poller, PostgreSQL LISTEN, Redis subscriber)
has no thread in the child, so the child must start its own.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

import pytest

from workclaim import Queue, Status
from workclaim.backends.wakeup import Wakeup


def _claim_in_child(q: Queue, waiting: Event, out: Connection) -> None:
    """Runs in the forked child: say when the claim starts waiting, send what it got."""
    wakeup = q.backend.wakeup()
    wait = wakeup.wait

    def signalling_wait(generation: int, timeout: float) -> bool:
        waiting.set()
        return wait(generation, timeout)

    wakeup.wait = signalling_wait  # type: ignore[method-assign]
    leases = q.claim("jobs", worker="child", wait=60)
    out.send([(lease.id, lease.payload) for lease in leases])


@pytest.mark.timeout(120)
def test_a_forked_child_waiting_to_claim_is_woken_by_an_enqueue(store_url: str) -> None:
    ctx = mp.get_context("fork")
    with Queue(store_url) as q:
        assert q.claim("jobs", worker="parent", wait=0.2) == []  # the parent's listener runs
        waiting = ctx.Event()
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_claim_in_child, args=(q, waiting, send))
        child.start()
        try:
            assert waiting.wait(30), "the child never started waiting"
            item_id = q.enqueue("jobs", {"for": "the child"})
            # The child's wait is 60 s: only a wake-up gets its answer here in time.
            assert receive.poll(30), "the child was not woken by the enqueue"
            assert receive.recv() == [(item_id, {"for": "the child"})]
        finally:
            child.join(30)
            if child.exitcode is None:
                child.kill()
                child.join(30)
        assert child.exitcode == 0
        item = q.get(item_id)  # the parent's own connections still work after the fork
        assert item is not None and item.status is Status.CLAIMED and item.worker == "child"
        assert q.claim("jobs", worker="parent", wait=0.2) == []


def _server_pid(q: Queue) -> int:
    """The PostgreSQL server process behind the connection a call of `q` uses now."""
    backend: Any = q.backend
    return int(backend._call(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone()[0]))


def _server_pid_in_child(q: Queue, out: Connection) -> None:
    out.send(_server_pid(q))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend_name", ["postgres"])
def test_a_forked_child_opens_its_own_postgresql_sessions(store_url: str) -> None:
    # Sharing a session means sharing its socket: the two processes' queries and replies would
    # interleave on it (one process could read the other's claim).
    ctx = mp.get_context("fork")
    with Queue(store_url) as q:
        parent = _server_pid(q)
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_server_pid_in_child, args=(q, send))
        child.start()
        try:
            assert receive.poll(30)
            assert receive.recv() != parent
        finally:
            child.join(30)
        assert _server_pid(q) == parent  # the child left the parent's session alone


def _notify_and_wait(wakeup: Wakeup) -> None:
    generation = wakeup.generation()
    wakeup.notify()
    assert wakeup.wait(generation, timeout=10)


@pytest.mark.timeout(60)
def test_a_fork_while_another_thread_holds_the_wakeup_lock_leaves_the_child_usable() -> None:
    # A listener thread notifies at any moment; the child must not inherit its lock held.
    wakeup = Wakeup()
    held, done = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with wakeup._cond:
            held.set()
            done.wait(30)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert held.wait(30)
        child = mp.get_context("fork").Process(target=_notify_and_wait, args=(wakeup,))
        child.start()
        child.join(30)
        if child.exitcode is None:
            child.kill()
            child.join(30)
    finally:
        done.set()
        holder.join(30)
    assert child.exitcode == 0
