"""complete_and_claim under a real race on Redis: spawned processes, each with its own
connections, released together, drain one queue with the fused call (batches of 1 and 3); every
item must end done exactly once, and its recorded attempt history must be one claim and one
completion with the same token and worker."""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import provider
from workclaim import EventKind, Queue, Status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

WORKERS = 6
ITEMS = 1_500


def _drain(url: str, batch: int, barrier: Any, out: Any) -> None:
    """Fused turns until nothing is left; report the (id, token) pairs granted and any lost."""
    granted: list[tuple[int, int]] = []
    lost = 0
    try:
        with Queue(url) as q:
            name = f"w{mp.current_process().pid}"
            barrier.wait(60)
            held: list[Any] = []
            while True:
                gone, held = q.complete_and_claim(
                    held, "jobs", worker=name, lease_seconds=120, limit=batch
                )
                lost += len(gone)
                if not held:
                    break
                granted.extend((lease.id, lease.token) for lease in held)
    except BaseException as exc:
        out.put(("error", repr(exc)))
        raise
    out.put(("ok", (granted, lost)))


def test_fused_turns_race_without_duplicates_and_record_each_item_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = provider("redis")(request, tmp_path)
    with Queue(url) as q:
        ids = q.enqueue_many("jobs", list(range(ITEMS)))
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_drain, args=(url, 1 + 2 * (n % 2), barrier, out))
        for n in range(WORKERS)
    ]
    for p in procs:
        p.start()
    reports = [out.get(timeout=150) for _ in procs]
    for p in procs:
        p.join(30)
    assert [status for status, _ in reports] == ["ok"] * WORKERS, reports
    granted = [pair for _, (pairs, _) in reports for pair in pairs]
    assert sum(lost for _, (_, lost) in reports) == 0
    assert sorted(Counter(item_id for item_id, _ in granted).values()) == [1] * ITEMS
    assert len({token for _, token in granted}) == ITEMS
    tokens = dict(granted)
    with Queue(url) as q:
        assert q.stats("jobs").done == ITEMS
        for item_id in ids:
            events = q.history(item_id)
            assert [e.kind for e in events] == [EventKind.CLAIMED, EventKind.COMPLETED]
            assert {e.token for e in events} == {tokens[item_id]}
            assert len({e.worker for e in events}) == 1
            assert events[-1].status == Status.DONE
        assert [item.id for item in q.items("jobs", "done", limit=1000)] == ids[:1000]
