"""Exactly once under real races, on every backend.

1. Offers: spawned processes, each with its own connection, released by a barrier, offer the
same slots of one schedule to the store (`Queue.fire_slot`, the scheduler's one write) and
record every answer; every slot must have been taken by exactly one process, and the store must
hold exactly one item per slot, the one its taker was told.

2. Schedulers: five scheduler OS processes fire ONE every-second schedule
(catch_up="all") while the driver moves their shared store clock over 10,000 slots in jumps and
SIGKILLs a scheduler every few jumps (many of them mid-fire), then restarts it. Read from the
store at the end, every slot has exactly one item, there is no other item, `last_slot` is the
final slot, and every slot a scheduler was told it won is that slot's item.

The clock is injected (tests/support/schedule_runner.py): nothing sleeps through a slot. The
driver lets the store fall at most `CATCH_UP_BOUND` slots behind the clock, so catch-up "all"
covers every slot; jumps past 60 s make some slots "missed" (the catch-up path), the rest are on
time. Waits have deadlines; nothing is timed.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.contract.helpers import T0
from tests.support.schedule_runner import FileClock
from workclaim import Item, Queue, Settings, Status
from workclaim.schedules import CATCH_UP_BOUND, slot_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# -- 1. offers ------------------------------------------------------------------------------
PROCESSES = 6
OFFERED = 150


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
            for n in range(OFFERED):
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
    assert len(answers) == PROCESSES * OFFERED  # every process offered every slot
    taken: dict[int, list[int]] = defaultdict(list)
    for answer in answers:
        if answer["item_id"] is not None:
            taken[answer["slot"]].append(answer["item_id"])
    assert sorted(taken) == list(range(OFFERED))  # every slot was taken...
    assert all(len(ids) == 1 for ids in taken.values()), {  # ...by exactly one process
        n: ids for n, ids in taken.items() if len(ids) > 1
    }
    takers = Counter(a["process"] for a in answers if a["item_id"] is not None)
    assert sum(takers.values()) == OFFERED

    with Queue(store_url) as q:
        items = q.items("jobs", Status.QUEUED, limit=1000)
        stored = {item.dedupe_key: item.id for item in items}
        expected = {f"schedule:race:{slot(n):%Y%m%dT%H%M%SZ}": taken[n][0] for n in range(OFFERED)}
        assert stored == expected  # one item per slot, the one its taker was told
        last = q.get_schedule("race", now=slot(OFFERED))
        assert (last.last_slot, last.last_item_id) == (slot(OFFERED - 1), taken[OFFERED - 1][0])


# -- 2. schedulers --------------------------------------------------------------------------
SLOTS = 10_000
SCHEDULERS = 5
JUMPS = (1, 90)  # seconds the clock moves at a time (uniform); past 60 s slots count as missed
KILL_EVERY = 8  # jumps between SIGKILLs: about 27 over the run
MIN_KILLS = 20
DEADLINE = 60.0  # seconds any one wait for the store may take before the test fails
POLL = 0.01
SECOND = timedelta(seconds=1)
BOUND = CATCH_UP_BOUND * SECOND


class Schedulers:
    """The scheduler processes, each with a record file of the slots it won."""

    def __init__(self, url: str, clock: Path, records: Path) -> None:
        self.url, self.clock, self.records = url, clock, records
        records.mkdir()
        self.everyone: list[subprocess.Popen[bytes]] = []  # the n-th writes s<n>.txt, s<n>.log
        self.live = [self.spawn() for _ in range(SCHEDULERS)]

    def spawn(self) -> subprocess.Popen[bytes]:
        """A new scheduler; its log (catch-up warnings, any traceback) goes to `s<n>.log`."""
        record = self.records / f"s{len(self.everyone)}.txt"
        args = [sys.executable, "-m", "tests.support.schedule_runner", self.url]
        with open(record.with_suffix(".log"), "wb") as log:
            process = subprocess.Popen([*args, str(self.clock), str(record)], stderr=log)
        self.everyone.append(process)
        return process

    def kill_one(self, rng: random.Random) -> None:
        """SIGKILL a random scheduler and start a new one in its place."""
        victim = self.live.pop(rng.randrange(len(self.live)))
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        self.live.append(self.spawn())

    def crashed(self) -> list[str]:
        """The logs of schedulers that ended by themselves (a loop must never end)."""
        return [
            self.records.joinpath(f"s{n}.log").read_text()
            for n, p in enumerate(self.everyone)
            if p.poll() not in (None, -signal.SIGKILL)
        ]

    def kill_all(self) -> None:
        for p in self.live:
            if p.poll() is None:
                p.kill()
                p.wait(30)

    def won(self) -> list[tuple[datetime, int]]:
        """Every (slot, item id) a scheduler was told it won, from every record file."""
        lines = [
            line.split()
            for path in sorted(self.records.glob("*.txt"))
            for line in path.read_text().splitlines()
        ]
        return [(datetime.fromisoformat(at), int(item)) for at, item in lines]


def reach(last_slot: Callable[[], datetime], slot: datetime, what: str) -> datetime:
    """Poll until the store's `last_slot()` is at least `slot`, and return it; fail after
    `DEADLINE` s (the schedulers' logs say why)."""
    deadline = time.monotonic() + DEADLINE
    while (last := last_slot()) < slot:
        assert time.monotonic() < deadline, f"the schedulers stalled at {last}: {what} (s*.log)"
        time.sleep(POLL)
    return last


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres", "redis", "mariadb"])
def test_every_slot_fires_exactly_once(store_url: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    name = f"race-{uuid.uuid4().hex[:8]}"
    final = T0 + timedelta(seconds=SLOTS)
    q = Queue(store_url)
    clock = FileClock(tmp_path / "clock")
    clock.set(T0)
    q.schedule(name, name, "* * * * * *", payload={"n": name}, catch_up="all", now=T0)

    def last_slot() -> datetime:
        return q.get_schedule(name, now=T0).last_slot or T0

    schedulers = Schedulers(store_url, tmp_path / "clock", tmp_path / "records")
    kills = mid_fire = 0
    try:
        now, jumps = T0, 0
        while now < final:
            step = timedelta(seconds=rng.randint(*JUMPS))
            now = min(final, now + step)
            # At most the bound behind the clock: catch-up "all" then covers every due slot.
            before = reach(last_slot, now - BOUND, "far behind the clock")
            clock.set(now)
            jumps += 1
            if jumps % KILL_EVERY == 0:
                fired = reach(last_slot, before + SECOND, "no slot fired after a jump")
                mid_fire += fired < now  # the kill lands while slots are being fired
                schedulers.kill_one(rng)
                kills += 1
        reach(last_slot, final, "the survivors did not catch up")
        crashed = schedulers.crashed()
    finally:
        schedulers.kill_all()

    assert crashed == []
    assert kills >= MIN_KILLS and mid_fire >= 1, (kills, mid_fire)
    items = _all_items(q, name)
    keys = Counter(item.dedupe_key for item in items)
    slots = {slot_key(name, T0 + s * SECOND) for s in range(1, SLOTS + 1)}
    missing = sorted(key for key in slots if keys[key] == 0)
    doubled = [key for key, count in keys.items() if count > 1 and key in slots]
    strays = [item.id for item in items if item.dedupe_key not in slots]
    assert (len(missing), len(doubled), len(strays)) == (0, 0, 0), (
        f"slots never fired, first {missing[:3]}; fired more than once, first {doubled[:3]}; "
        f"items of no slot, first {strays[:3]}"
    )
    schedule = q.get_schedule(name, now=final)
    by_key = {item.dedupe_key: item.id for item in items}
    assert schedule.last_slot == final
    assert schedule.last_item_id == by_key[slot_key(name, final)]
    won = schedulers.won()
    assert len({at for at, _ in won}) == len(won), "two schedulers were told they won a slot"
    assert all(by_key[slot_key(name, at)] == item_id for at, item_id in won)
    assert len(won) >= SLOTS - kills  # a kill loses at most the record of the slot it ended
    q.close()


def _all_items(q: Queue, queue: str) -> list[Item]:
    """Every item of `queue`, whatever its status, page by page."""
    found: list[Item] = []
    for status in Status:
        page = q.items(queue, status, limit=1_000)
        while page:
            found += page
            page = q.items(queue, status, limit=1_000, after=page[-1].id)
    return found
