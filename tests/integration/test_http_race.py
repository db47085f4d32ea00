"""A multi-process race through HTTP: worker processes (spawned, each with its own `Client`),
released together by a barrier, claim and complete until the queue is empty. The recorded
history must show no (id, token) claimed twice and every item completed exactly once."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.http_process import serve_process
from workclaim import Queue, Status
from workclaim.client import Client

ITEMS = 300
PROCESSES = 4


def race_worker(base: str, name: str, barrier: Any, results: Any) -> None:
    """Claim and complete until nothing is left; report every claim and completion."""
    claimed: list[tuple[int, int]] = []
    completed: list[tuple[int, int]] = []
    with Client(base, timeout=30) as client:
        barrier.wait()
        while True:
            leases = client.claim("race", worker=name, lease_seconds=60, limit=3)
            if not leases:
                break
            for lease in leases:
                claimed.append((lease.id, lease.token))
                client.complete(lease, result={"by": name})
                completed.append((lease.id, lease.token))
    results.put((name, claimed, completed))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_processes_racing_through_http_never_share_an_item(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    with Queue(db) as q:
        ids = q.enqueue_many("race", [{"n": n} for n in range(ITEMS)])
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    with serve_process(db, "--no-auth") as base:
        procs = [
            ctx.Process(target=race_worker, args=(base, f"w{i}", barrier, results))
            for i in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        history = [results.get(timeout=90) for _ in procs]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
    results.close()
    results.join_thread()
    claims = [c for _, claimed, _ in history for c in claimed]
    completions = [c for _, _, completed in history for c in completed]
    assert not [pair for pair, n in Counter(claims).items() if n > 1], "an (id, token) twice"
    assert Counter(i for i, _ in completions) == Counter(ids), "not completed exactly once"
    assert len({t for _, t in claims}) == len(claims), "a token was handed out twice"
    with Queue(db) as q:
        items = [q.get(i) for i in ids]
    assert all(item.status is Status.DONE and item.attempts == 1 for item in items)
    by_worker = {name: {i for i, _ in completed} for name, _, completed in history}
    for item in items:  # the store agrees with who reported completing it
        assert item.id in by_worker[item.result["by"]]
    assert sum(1 for done in by_worker.values() if done) >= 2, "no actual race happened"
