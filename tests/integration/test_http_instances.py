"""Two `workclaim serve` processes on one PostgreSQL (or one Redis) behind HAProxy (round-robin,
health checks on /readyz): a long-poll waiting on one instance is woken by an enqueue through the
other, and a stale lease is refused (409) by either."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.instances import Cluster, Instance, cluster
from tests.support.served_api import problem

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
SERVERS = pytest.mark.parametrize("backend_name", ["postgres", "redis"])
WAIT = 25.0  # the long-poll's wait: it must end long before this, with the item


async def waiting(instance: Instance, client: httpx.AsyncClient) -> float:
    """The long-polls waiting on `instance` now (its /metrics; --no-auth callers are admin)."""
    text = (await client.get(f"{instance.url}/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("workclaim_longpolls_waiting "))
    return float(line.split()[1])


async def holder_of_one_long_poll(front: Cluster, client: httpx.AsyncClient) -> int:
    """The index of the instance on which the one long-poll waits (once one shows it)."""
    while True:
        counts = [await waiting(i, client) for i in front.instances]
        if sum(counts) == 1:
            return counts.index(1)
        await asyncio.sleep(0.02)


async def wake_across(front: Cluster, queue: str) -> tuple[httpx.Response, list[int], float]:
    async with httpx.AsyncClient(base_url=front.url, timeout=WAIT + 30) as client:
        poll = asyncio.create_task(
            client.post("/worker/claim", json={"queue": queue, "wait": WAIT, "limit": 1})
        )
        holder = await asyncio.wait_for(holder_of_one_long_poll(front, client), 30)
        other = front.instances[1 - holder]
        enqueued = await client.post(f"{other.url}/queues/{queue}/items", json={"payloads": [1]})
        assert enqueued.status_code == 201, enqueued.text
        sent = time.monotonic()
        answer = await poll
        return answer, enqueued.json()["ids"], time.monotonic() - sent


@SERVERS
def test_a_long_poll_on_one_instance_is_woken_by_an_enqueue_through_the_other(
    store_url: str, backend_name: str, tmp_path: Path
) -> None:
    queue = f"wake-{uuid.uuid4().hex[:8]}"
    with cluster(store_url, tmp_path, args=["--max-wait", str(WAIT)]) as front:
        answer, ids, latency = asyncio.run(wake_across(front, queue))
    # Woken by the enqueue: a long-poll that ran out its wait would answer 204 with nothing
    # (a waiting claim looks again only on a wake-up from the store, or at its deadline).
    assert answer.status_code == 200, answer.text
    assert [lease["id"] for lease in answer.json()["leases"]] == ids
    print(f"\n{backend_name}: long-poll woken {latency * 1000:.1f} ms after the enqueue answered")


@SERVERS
def test_a_stale_lease_is_refused_by_either_instance(store_url: str, tmp_path: Path) -> None:
    queue = f"stale-{uuid.uuid4().hex[:8]}"
    with cluster(store_url, tmp_path) as front, httpx.Client(timeout=30) as c:
        c.post(f"{front.url}/queues/{queue}/items", json={"payloads": [1]}).raise_for_status()
        claim = {"queue": queue, "limit": 1}
        first = c.post(f"{front.url}/worker/claim", json=claim).json()["leases"][0]
        old = {"id": first["id"], "token": first["token"]}
        c.post(f"{front.url}/worker/release", json=old).raise_for_status()
        second = c.post(f"{front.url}/worker/claim", json=claim).json()["leases"][0]
        assert second["id"] == first["id"] and second["token"] > first["token"]
        for instance in front.instances:
            problem(c.post(f"{instance.url}/worker/complete", json=old), 409, "lease-lost")
            problem(c.post(f"{instance.url}/worker/heartbeat", json=old), 409, "lease-lost")
        for _ in front.instances:  # round-robin: once through each
            problem(c.post(f"{front.url}/worker/complete", json=old), 409, "lease-lost")
        new = {"id": second["id"], "token": second["token"]}
        assert c.post(f"{front.url}/worker/complete", json=new).status_code == 200
        done = c.get(f"{front.instances[1].url}/items/{first['id']}").json()
        assert done["status"] == "done"
