"""Two `workclaim serve` processes on one PostgreSQL (or one Redis, or one MariaDB) behind
HAProxy (round-robin, health checks on /readyz): a long-poll waiting on one instance is woken by an
enqueue through the other, a stale lease is refused (409) by either, and 1,000 long-polling
workers spread over both claim every item once (PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.fleet import Fleet, run_fleet, wake_across
from tests.support.instances import cluster
from tests.support.served_api import problem

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
SERVERS = pytest.mark.parametrize("backend_name", ["postgres", "redis", "mariadb"])
WAIT = 25.0  # the long-poll's wait: it must end long before this, with the item


@SERVERS
def test_a_long_poll_on_one_instance_is_woken_by_an_enqueue_through_the_other(
    store_url: str, backend_name: str, tmp_path: Path
) -> None:
    queue = f"wake-{uuid.uuid4().hex[:8]}"
    with cluster(store_url, tmp_path, args=["--max-wait", str(WAIT)]) as front:
        answer, ids, latency = asyncio.run(wake_across(front, queue, WAIT))
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


# 1,000 long-polling workers: 4 processes of 250 asyncio clients; items in 5 batches of 100.
FLEET_PROCESSES, FLEET_CLIENTS, BATCHES, BATCH = 4, 250, 5, 100


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend_name", ["postgres"])
def test_a_thousand_long_polling_workers_over_two_instances(store_url: str, tmp_path: Path) -> None:
    queue = f"fleet-{uuid.uuid4().hex[:8]}"
    with cluster(store_url, tmp_path, args=["--max-longpolls", "2000"]) as front:
        fleet = Fleet(front.url, queue, FLEET_PROCESSES, FLEET_CLIENTS)
        result = run_fleet(front, fleet, BATCHES, BATCH, pause=0.05)
    assert result.errors == []
    assert len(result.ids) == BATCHES * BATCH
    claimed = Counter(i for i, _ in result.claims)
    assert claimed == Counter(result.ids), "an item claimed twice, or never"
    print(
        f"\n{len(result.ids)} items to {FLEET_PROCESSES * FLEET_CLIENTS} long-polling workers "
        f"in {result.seconds:.2f} s; pickup p50 {result.pickup(0.5) * 1000:.0f} ms, "
        f"p95 {result.pickup(0.95) * 1000:.0f} ms, max {max(result.pickups) * 1000:.0f} ms"
    )
