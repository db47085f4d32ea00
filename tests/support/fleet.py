"""Long-polling HTTP workers against several `workclaim serve` instances behind HAProxy: what
the multi-instance tests and `benchmarks/instances.py` measure.

- `wake_across`: one long-poll waits on one instance, an item is enqueued directly on another;
  the long-poll's answer and the seconds from the enqueue's answer to it.
- `run_fleet`: many long-polling workers (a few OS processes, each running many asyncio clients
  on one connection pool) claim and complete items enqueued in batches through the front; every
  claim and each item's pickup latency (enqueue sent to claim answered) are returned.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_mod
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.instances import Cluster, Instance

POLL = 0.02  # how often the coordinator looks at gauges and counts: nothing to wait on


async def waiting(instance: Instance, client: httpx.AsyncClient) -> int:
    """The long-polls waiting on `instance` now (its /metrics; --no-auth callers are admin)."""
    text = (await client.get(f"{instance.url}/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("workclaim_longpolls_waiting "))
    return round(float(line.split()[1]))


async def _all_waiting(front: Cluster, client: httpx.AsyncClient) -> list[int]:
    return [await waiting(i, client) for i in front.instances]


async def wake_across(
    front: Cluster, queue: str, wait: float
) -> tuple[httpx.Response, list[int], float]:
    """(the long-poll's answer, the ids enqueued, seconds from the enqueue's answer to the
    long-poll's): the long-poll goes through the front, the enqueue straight to another
    instance than the one it waits on."""
    async with httpx.AsyncClient(base_url=front.url, timeout=wait + 30) as client:
        poll = asyncio.create_task(
            client.post("/worker/claim", json={"queue": queue, "wait": wait, "limit": 1})
        )
        deadline = time.monotonic() + 30
        while sum(counts := await _all_waiting(front, client)) != 1:
            assert time.monotonic() < deadline, f"the long-poll is not waiting: {counts}"
            await asyncio.sleep(POLL)
        other = front.instances[1 - counts.index(1)]
        enqueued = await client.post(f"{other.url}/queues/{queue}/items", json={"payloads": [1]})
        assert enqueued.status_code == 201, enqueued.text
        sent = time.monotonic()
        answer = await poll
        return answer, enqueued.json()["ids"], time.monotonic() - sent


@dataclass(frozen=True)
class Fleet:
    """`processes` OS processes of `clients` long-polling workers each (worker name
    `fleet<process>`), claiming from `queue` through `url` with long-polls of `wait` s."""

    url: str
    queue: str
    processes: int
    clients: int
    wait: float = 20.0


@dataclass
class FleetResult:
    """Every claim (id, token), each pickup in seconds, the ids enqueued, and any error."""

    claims: list[tuple[int, int]] = field(default_factory=list)
    pickups: list[float] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def pickup(self, quantile: float) -> float:
        """A pickup latency quantile in seconds (nearest rank)."""
        ranked = sorted(self.pickups)
        return ranked[min(len(ranked) - 1, int(quantile * len(ranked)))] if ranked else 0.0


def fleet_process(fleet: Fleet, index: int, stop: Any, results: Any) -> None:
    """Process entry point: `fleet.clients` workers until `stop` is set; puts (claims of
    (id, token, pickup s), errors) on `results`."""
    results.put(asyncio.run(_clients(fleet, f"fleet{index}", stop)))


async def _clients(fleet: Fleet, name: str, stop: Any) -> tuple[list[Any], list[str]]:
    got: list[tuple[int, int, float]] = []
    errors: list[str] = []
    body = {"queue": fleet.queue, "worker": name, "wait": fleet.wait, "lease_seconds": 120}
    pool = httpx.Limits(max_connections=fleet.clients, max_keepalive_connections=fleet.clients)
    timeout = httpx.Timeout(fleet.wait + 30, connect=30, pool=120)

    async def worker(c: httpx.AsyncClient) -> None:
        while True:
            try:
                r = await c.post("/worker/claim", json=body)
                if r.status_code == 204:
                    continue
                r.raise_for_status()
                t = time.monotonic_ns()
                for lease in r.json()["leases"]:
                    got.append((lease["id"], lease["token"], (t - lease["payload"]["t"]) / 1e9))
                    ids = {"id": lease["id"], "token": lease["token"], "worker": name}
                    (await c.post("/worker/complete", json=ids)).raise_for_status()
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.1)

    async with httpx.AsyncClient(base_url=fleet.url, limits=pool, timeout=timeout) as c:
        tasks = [asyncio.create_task(worker(c)) for _ in range(fleet.clients)]
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return got, errors


def run_fleet(front: Cluster, fleet: Fleet, batches: int, batch: int, pause: float) -> FleetResult:
    """Start the fleet, wait until all its long-polls wait, enqueue `batches` of `batch` items
    through the front `pause` s apart, wait until every one is done, stop the fleet."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    channel = ctx.Queue()
    procs = [
        ctx.Process(target=fleet_process, args=(fleet, i, stop, channel), daemon=True)
        for i in range(fleet.processes)
    ]
    result = FleetResult()
    try:
        for p in procs:
            p.start()
        asyncio.run(_feed(front, fleet, batches, batch, pause, result))
        stop.set()
        for _ in procs:
            got, errors = channel.get(timeout=60)
            result.claims += [(i, token) for i, token, _ in got]
            result.pickups += [seconds for _, _, seconds in got]
            result.errors += errors
        for p in procs:
            p.join(30)
    except queue_mod.Empty:
        result.errors.append("a fleet process did not report")
    finally:
        stop.set()
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
        channel.close()
    return result


async def _feed(
    front: Cluster, fleet: Fleet, batches: int, batch: int, pause: float, result: FleetResult
) -> None:
    total = fleet.processes * fleet.clients
    async with httpx.AsyncClient(base_url=front.url, timeout=60) as c:
        deadline = time.monotonic() + 120
        while sum(counts := await _all_waiting(front, c)) < total:
            assert time.monotonic() < deadline, f"only {counts} of {total} long-polls wait"
            await asyncio.sleep(0.1)
        started = time.monotonic()
        for _ in range(batches):
            payloads = [{"t": time.monotonic_ns()}] * batch
            r = await c.post(f"/queues/{fleet.queue}/items", json={"payloads": payloads})
            assert r.status_code == 201, r.text
            result.ids += r.json()["ids"]
            await asyncio.sleep(pause)
        deadline = time.monotonic() + 120
        while (await c.get(f"/queues/{fleet.queue}/stats")).json()["done"] < len(result.ids):
            assert time.monotonic() < deadline, "the fleet did not finish the work"
            await asyncio.sleep(POLL)
        result.seconds = time.monotonic() - started
