"""SQLite reads the store's clock only once it holds the write lock.

A write that waited for the lock must be judged at the moment it actually happens: a claim that
waited longer than its lease must not come back already expired, and a heartbeat that waited
past its lease's expiry must not revive it. Another connection holds `BEGIN IMMEDIATE` (it takes
no writer gate, so the call waits in SQLite's busy handler) while a real separate process makes
the call; the test compares store clock values recorded around the lock's release.
"""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from workclaim import LeaseLost, Queue, Settings, Status
from workclaim._time import from_micros, now_micros, to_micros
from workclaim.models import EventKind, Lease

# No write before the call under test (a migration or a prune would wait for the lock first).
_NO_MIGRATE = Settings(auto_migrate=False, retention_seconds=0)
HOLD_US = 1_500_000  # how long past the call's start the lock stays held: longer than the lease


def _call_when_told(url: str, inbox: Connection, out: Connection) -> None:
    """Connect, say so, then make the call the parent sends: ("claim", None) or ("heartbeat",
    lease); send back its leases or "LeaseLost"."""
    with Queue(url, settings=_NO_MIGRATE) as q:
        q.stats("jobs")  # connected and schema checked: the call below is the only write
        out.send("ready")
        op, lease = inbox.recv()
        try:
            if op == "claim":
                out.send(q.claim("jobs", worker="w", lease_seconds=1.0))
            else:
                out.send(q.heartbeat(lease))
        except LeaseLost:
            out.send("LeaseLost")


def _run_blocked(path: Path, queue: Queue, op: str) -> tuple[object, Lease | None, int]:
    """Have a spawned process make `op` while another connection holds the write lock, and
    release the lock HOLD_US after the call was asked for. For a heartbeat the lease is claimed
    (for 1 s) just before the lock is taken, so it expires while the call waits. Returns what
    the process sent, the lease, and the store's clock (microseconds) just before the lock was
    released."""
    ctx = mp.get_context("spawn")
    to_child, inbox = ctx.Pipe()
    from_child, out = ctx.Pipe()
    proc = ctx.Process(target=_call_when_told, args=(queue.url, inbox, out))
    proc.start()
    try:
        assert from_child.poll(30) and from_child.recv() == "ready"
        lease = queue.claim("jobs", worker="w", lease_seconds=1.0)[0] if op == "heartbeat" else None
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # no writer gate: the call waits in the busy handler
        try:
            to_child.send((op, lease))
            until = now_micros() + HOLD_US
            while now_micros() <= until:  # the call waits for the lock meanwhile
                time.sleep(0.05)
            released_at = now_micros()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert from_child.poll(30)
        return from_child.recv(), lease, released_at
    finally:
        proc.join(30)


@pytest.mark.timeout(60)
def test_a_claim_that_waited_for_the_lock_gets_its_full_lease(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    url = f"sqlite:///{path}"
    with Queue(url) as q:
        q.enqueue("jobs", 1)
        leases, _, released_at = _run_blocked(path, q, "claim")
        assert isinstance(leases, list) and len(leases) == 1
        assert leases[0].expires_at > from_micros(released_at)


@pytest.mark.timeout(60)
def test_a_heartbeat_that_waited_past_expiry_does_not_revive_the_lease(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    url = f"sqlite:///{path}"
    with Queue(url) as q:
        q.enqueue("jobs", 1)
        outcome, lease, released_at = _run_blocked(path, q, "heartbeat")
        assert lease is not None and released_at > to_micros(lease.expires_at)
        assert outcome == "LeaseLost", outcome
        item = q.get(lease.id)
        assert item is not None and item.expires_at == lease.expires_at
        assert item.status is Status.CLAIMED  # expired, nobody has reaped it yet
        history = q.history(lease.id)
        assert history is not None and history[-1].kind is EventKind.CLAIMED
