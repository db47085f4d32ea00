"""Long-polls hold no thread and no connection: 1,000 of them wait on one server process (with
16 store threads) while other clients enqueue, claim and complete; then one batch wakes them.
Waiters with the same request share one waiting claim (server/longpoll.py), so each enqueue costs
the store one claim per group of waiters, not one per waiter."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.http_process import serve_process

WAITERS = 1_000
BUSY_ITEMS = 100
BUSY_WORKERS = 10


async def waiting_count(c: httpx.AsyncClient) -> float:
    text = (await c.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("workclaim_longpolls_waiting "))
    return float(line.split()[1])


async def scenario(base: str) -> None:
    limits = httpx.Limits(max_connections=WAITERS + 50, max_keepalive_connections=WAITERS + 50)
    timeout = httpx.Timeout(120, connect=30, pool=60)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as c:

        async def long_poll() -> httpx.Response:
            return await c.post("/worker/claim", json={"queue": "idle", "wait": 60, "limit": 1})

        waiters = [asyncio.create_task(long_poll()) for _ in range(WAITERS)]
        while await waiting_count(c) < WAITERS:
            assert not any(t.done() for t in waiters), "a long-poll ended early"
            await asyncio.sleep(0.1)

        # meanwhile, other clients enqueue, claim (long-polling too) and complete
        ids: list[int] = []
        done: list[tuple[int, int]] = []

        async def producer() -> None:
            for start in range(0, BUSY_ITEMS, 10):
                batch = list(range(start, start + 10))
                r = await c.post("/queues/busy/items", json={"payloads": batch})
                ids.extend(r.json()["ids"])

        async def busy_worker() -> None:
            while len(done) < BUSY_ITEMS:
                r = await c.post("/worker/claim", json={"queue": "busy", "limit": 5, "wait": 0.5})
                if r.status_code == 204:
                    continue
                for lease in r.json()["leases"]:
                    ok = await c.post(
                        "/worker/complete", json={"id": lease["id"], "token": lease["token"]}
                    )
                    assert ok.status_code == 200, ok.text
                    done.append((lease["id"], lease["token"]))

        await asyncio.gather(producer(), *(busy_worker() for _ in range(BUSY_WORKERS)))
        assert sorted(i for i, _ in done) == sorted(ids)  # each completed exactly once
        assert await waiting_count(c) == WAITERS
        assert not any(t.done() for t in waiters)

        # one batch wakes every waiter; each gets exactly one distinct item
        r = await c.post("/queues/idle/items", json={"payloads": list(range(WAITERS))})
        assert r.status_code == 201
        answers = await asyncio.gather(*waiters)
        assert {a.status_code for a in answers} == {200}
        got = [a.json()["leases"][0]["id"] for a in answers]
        assert sorted(got) == sorted(r.json()["ids"])
        stats = (await c.get("/queues/idle/stats")).json()
        assert stats["claimed"] == WAITERS and stats["queued"] == 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_thousand_long_polls_on_one_server_process(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}?synchronous=normal"
    args = ("--no-auth", "--threads", "16", "--max-longpolls", "5000", "--max-wait", "60")
    with serve_process(db, *args) as base:
        asyncio.run(scenario(base))
