"""Cancelling a waiting `AsyncQueue.claim` (a long-poll whose client hung up) never strands a
lease: a claim already running in its thread finishes there, and what it took goes back."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from workclaim import AsyncQueue, Queue, Status


async def cancel_while_the_claim_runs(url: str, path: Path, item_id: int) -> None:
    async with AsyncQueue(url) as aq:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the claim's own BEGIN IMMEDIATE waits behind this
        task = asyncio.create_task(aq.claim("jobs", worker="w1", wait=30))
        await asyncio.sleep(0.5)  # the claim is in its thread by now, waiting on the lock
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        blocker.execute("COMMIT")  # now the claim in its thread goes through and takes the item
        blocker.close()
        deadline = time.monotonic() + 20  # a bound against hanging, not a timing assertion
        while [str(e.kind) for e in await aq.history(item_id)] != ["claimed", "released"]:
            assert time.monotonic() < deadline, await aq.history(item_id)
            await asyncio.sleep(0.02)


def test_a_cancelled_waiting_claim_gives_back_what_its_thread_took(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    url = f"sqlite:///{path}?gate=off"
    with Queue(url) as q:
        item_id = q.enqueue("jobs", 1)
    asyncio.run(cancel_while_the_claim_runs(url, path, item_id))
    with Queue(url) as q:
        item = q.get(item_id)
        assert (item.status, item.attempts) == (Status.QUEUED, 0)
        [lease] = q.claim("jobs", worker="w2")
        assert lease.attempt == 1
