"""Waiting claims: woken by new work or by the clock, never by a tight poll."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from workclaim import Queue, Settings


def test_a_wait_with_nothing_to_claim_returns_nothing(queue: Any) -> None:
    assert queue.claim("jobs", worker="w1", wait=0.2) == []


@pytest.mark.timeout(60)
def test_a_waiting_claim_is_woken_by_an_enqueue(
    queue: Any, store_url: str, settings: Settings
) -> None:
    # The wait (600 s) is far longer than the test's timeout: only a wake-up can pass it.
    started = threading.Event()

    def produce() -> None:
        started.wait()
        with Queue(store_url, settings=settings) as producer:
            producer.enqueue("jobs", {"hello": "waiter"})

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        started.set()
        leases = queue.claim("jobs", worker="w1", wait=600)
    finally:
        thread.join()
    assert [lease.payload for lease in leases] == [{"hello": "waiter"}]


@pytest.mark.timeout(60)
def test_a_waiting_claim_wakes_when_a_delayed_item_becomes_due(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, delay=0.3)
    leases = queue.claim("jobs", worker="w1", wait=600)
    assert [lease.id for lease in leases] == [item_id]


@pytest.mark.timeout(60)
def test_a_waiting_claim_wakes_when_a_lease_expires(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1)
    [first] = queue.claim("jobs", worker="w1", lease_seconds=0.3)
    [second] = queue.claim("jobs", worker="w2", wait=600)
    assert second.id == item_id and second.token > first.token
