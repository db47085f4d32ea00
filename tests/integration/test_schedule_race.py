"""Exactly once under a real race: spawned processes, each with its own connection, released by a
barrier, offer the same slots of one schedule to the store (`Queue.fire_slot`, the scheduler's
one write) and record every answer; every slot must have been taken by exactly one process, and
the store must hold exactly one item per slot, the one its taker was told."""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from workclaim import Queue, Settings, Status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PROCESSES = 6
SLOTS = 150
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def slot(n: int) -> datetime:
    """The n-th slot of the schedule `* * * * * *` (one a second) after it was set at T0."""
    return T0 + timedelta(seconds=n + 1)


def offer_all(url: str, process: int, barrier: Any, history: str) -> None:
    """One scheduler process: read the schedule, wait for the others, offer every slot in
    order (as a scheduler does), and record each answer, one JSON line per offer."""
    q = Queue(url, settings=Settings(auto_migrate=False))
    try:
        schedule = q.get_schedule("race", now=T0)
        barrier.wait(timeout=60)
        with open(history, "w", encoding="utf-8") as out:
            for n in range(SLOTS):
                item_id = q.fire_slot(schedule, slot(n), now=slot(n))
                out.write(json.dumps({"process": process, "slot": n, "item_id": item_id}) + "\n")
    finally:
        q.close()


def test_every_slot_is_enqueued_exactly_once_by_racing_schedulers(
    store_url: str, tmp_path: Path
) -> None:
    with Queue(store_url) as q:
        q.schedule("race", "jobs", "* * * * * *", payload={"x": 1}, now=T0)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    files = [str(tmp_path / f"history-{p}.jsonl") for p in range(PROCESSES)]
    procs = [
        ctx.Process(target=offer_all, args=(store_url, p, barrier, files[p]))
        for p in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES

    answers = [json.loads(line) for name in files for line in Path(name).read_text().splitlines()]
    assert len(answers) == PROCESSES * SLOTS  # every process offered every slot
    taken: dict[int, list[int]] = defaultdict(list)
    for answer in answers:
        if answer["item_id"] is not None:
            taken[answer["slot"]].append(answer["item_id"])
    assert sorted(taken) == list(range(SLOTS))  # every slot was taken...
    assert all(len(ids) == 1 for ids in taken.values()), {  # ...by exactly one process
        n: ids for n, ids in taken.items() if len(ids) > 1
    }
    takers = Counter(a["process"] for a in answers if a["item_id"] is not None)
    assert sum(takers.values()) == SLOTS

    with Queue(store_url) as q:
        items = q.items("jobs", Status.QUEUED, limit=1000)
        stored = {item.dedupe_key: item.id for item in items}
        expected = {f"schedule:race:{slot(n):%Y%m%dT%H%M%SZ}": taken[n][0] for n in range(SLOTS)}
        assert stored == expected  # one item per slot, the one its taker was told
        last = q.get_schedule("race", now=slot(SLOTS))
        assert (last.last_slot, last.last_item_id) == (slot(SLOTS - 1), taken[SLOTS - 1][0])
