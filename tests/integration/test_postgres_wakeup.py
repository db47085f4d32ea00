"""PostgreSQL LISTEN/NOTIFY: a waiting claim is woken by work enqueued in another process."""

from __future__ import annotations

import multiprocessing as mp
import threading
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from tests.support.servers import postgres_url
from workclaim import Queue, Settings


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


def _enqueue_when_told(url: str, go: Event) -> None:
    go.wait(60)
    with Queue(url) as q:
        q.enqueue("jobs", {"from": "another process"})


@pytest.mark.timeout(60)
def test_a_waiter_is_woken_by_an_enqueue_in_another_process(url: str) -> None:
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    producer = ctx.Process(target=_enqueue_when_told, args=(url, go))
    producer.start()
    with Queue(url) as q:
        wakeup = q.backend.wakeup()

        def release_producer_once_waiting() -> None:
            # Tell the producer to go once the claim below is parked in its wait.
            while wakeup.waiting == 0 and producer.is_alive():
                threading.Event().wait(0.01)
            go.set()

        helper = threading.Thread(target=release_producer_once_waiting)
        helper.start()
        try:
            # The wait (600 s) is far longer than the test's timeout: only a NOTIFY from the
            # other process's commit can end it in time.
            leases = q.claim("jobs", worker="w1", wait=600)
        finally:
            go.set()
            helper.join()
            producer.join(30)
    assert producer.exitcode == 0
    assert [lease.payload for lease in leases] == [{"from": "another process"}]


@pytest.mark.timeout(60)
def test_a_release_by_another_queue_wakes_a_waiter(url: str) -> None:
    settings = Settings(timeout=5)
    with Queue(url, settings=settings) as waiter_q, Queue(url, settings=settings) as other:
        other.enqueue("jobs", 1)
        [lease] = other.claim("jobs", worker="w1", lease_seconds=600)
        woke = threading.Event()

        def release_once_waiting() -> None:
            wakeup = waiter_q.backend.wakeup()
            while wakeup.waiting == 0:
                woke.wait(0.01)
            other.release(lease)

        helper = threading.Thread(target=release_once_waiting)
        helper.start()
        try:
            leases = waiter_q.claim("jobs", worker="w2", wait=600)
        finally:
            helper.join()
    assert [le.id for le in leases] == [lease.id]
    assert leases[0].token > lease.token
