"""AsyncQueue: the same contract from asyncio, long waits held on events, not threads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from workclaim import AsyncQueue, LeaseLost, Status


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_async_queue_round_trip(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncQueue(f"sqlite:///{tmp_path / 'w.db'}") as q:
            ids = await q.enqueue_many("jobs", [{"n": 1}, {"n": 2}])
            [a, b] = await q.claim("jobs", worker="w1", limit=2)
            await q.complete(a, result="ok")
            assert await q.fail(b, "boom", retry=False) is Status.DEAD
            with pytest.raises(LeaseLost):
                await q.heartbeat(a)
            assert (await q.get(ids[0])).result == "ok"
            assert (await q.stats("jobs")).dead == 1

    run(main())


@pytest.mark.timeout(30)
def test_many_async_waiters_hold_no_threads_and_all_wake(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncQueue(f"sqlite:///{tmp_path / 'w.db'}", max_threads=2) as q:
            waiters = [
                asyncio.create_task(q.claim("jobs", worker=f"w{i}", wait=120)) for i in range(50)
            ]
            await asyncio.sleep(0)  # let them start waiting; two threads serve all fifty
            await q.enqueue_many("jobs", list(range(50)))
            results = await asyncio.gather(*waiters)
            got = sorted(lease.payload for leases in results for lease in leases)
            assert got == list(range(50))

    run(main())
