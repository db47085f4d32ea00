"""The worker runtime on a limited queue: a worker whose claims the policy stops waits on the
store's wake-ups (a long poll) instead of spinning, and picks the work up when a slot frees, the
rate window moves on, or the queue resumes.

The store's claims are counted below the `Queue` (every look of a long poll counts), with the
real backend underneath: a worker that spins makes thousands of them in the time these make a
handful.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from workclaim import Queue, Settings
from workclaim.backends import open_backend
from workclaim.backends.base import Backend
from workclaim.worker import Context, Worker

pytestmark = pytest.mark.timeout(120)

QUEUE = "flow-worker"
ITEMS = 20
IDLE = 1.5  # seconds the worker is left facing a limit
MOST_CLAIMS = 25  # a handful of long polls and their wake-ups, never a spin
DEADLINE = 60.0


class CountingClaims:
    """A real backend whose claim calls (plain and fused) are counted."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.claims = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.claims += 1

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        self._count()
        return self._backend.claim(*args, **kwargs)

    def complete_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        self._count()
        return self._backend.complete_and_claim(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@pytest.fixture
def counted(store_url: str) -> Iterator[tuple[Queue, CountingClaims]]:
    settings = Settings()
    counter = CountingClaims(open_backend(store_url, settings))
    q = Queue(store_url, settings=settings, backend=cast(Backend, counter))
    try:
        yield q, counter
    finally:
        q.close()


class Running:
    """A worker on its own thread, with a handler that may be held back."""

    def __init__(self, q: Queue, *, concurrency: int, wait: float) -> None:
        self.worker = Worker(q, queues=QUEUE, concurrency=concurrency, wait=wait, lease_seconds=20)
        self.gate = threading.Event()
        self.started = 0
        self.handled = 0
        self._lock = threading.Lock()
        self.worker.handler(self._handle)
        self.thread = threading.Thread(
            target=self.worker.run, kwargs={"install_signals": False}, daemon=True
        )

    def _handle(self, ctx: Context) -> None:
        with self._lock:
            self.started += 1
        self.gate.wait(DEADLINE)
        with self._lock:
            self.handled += 1

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.worker.stop()
        self.thread.join(DEADLINE)

    def until(self, done: Any) -> None:
        """Wait (bounded) until `done()`; fail if it never is."""
        deadline = time.monotonic() + DEADLINE
        while not done():
            assert time.monotonic() < deadline, "the worker never got there"
            time.sleep(0.05)  # the test watching the worker: it has no event to wait on


def test_a_worker_on_a_paused_queue_long_polls(counted: tuple[Queue, CountingClaims]) -> None:
    q, counter = counted
    q.pause(QUEUE)
    q.enqueue_many(QUEUE, list(range(ITEMS)))
    with Running(q, concurrency=4, wait=0.5) as running:
        running.gate.set()
        time.sleep(IDLE)  # the worker faces a paused queue with work in it
        assert running.started == 0
        assert counter.claims <= MOST_CLAIMS, f"{counter.claims} claims while paused: a spin"
        q.resume(QUEUE)
        running.until(lambda: running.handled == ITEMS)
    assert q.stats(QUEUE).done == ITEMS


def test_a_worker_held_at_the_concurrency_limit_long_polls(
    counted: tuple[Queue, CountingClaims],
) -> None:
    q, counter = counted
    q.set_policy(QUEUE, concurrency=2)
    q.enqueue_many(QUEUE, list(range(ITEMS)))
    with Running(q, concurrency=8, wait=2.0) as running:
        running.until(lambda: running.started == 2)
        before = counter.claims
        time.sleep(IDLE)  # two handlers hold both slots; six threads of the worker are free
        assert running.started == 2, "the worker took more than the queue's concurrency"
        assert counter.claims - before <= MOST_CLAIMS, f"{counter.claims - before} claims: a spin"
        running.gate.set()  # the slots free one by one: each wakes the waiting claim
        running.until(lambda: running.handled == ITEMS)
    assert q.stats(QUEUE).done == ITEMS


def test_a_rate_limited_worker_waits_for_the_window(
    counted: tuple[Queue, CountingClaims],
) -> None:
    """15 items at 5 a second: the worker finishes them with a few claims per window."""
    q, counter = counted
    q.set_policy(QUEUE, rate=(5, 1.0))
    q.enqueue_many(QUEUE, list(range(15)))
    with Running(q, concurrency=4, wait=2.0) as running:
        running.gate.set()
        running.until(lambda: running.handled == 15)
    assert counter.claims <= 3 * MOST_CLAIMS, f"{counter.claims} claims for 3 windows: a spin"
