"""The worker runtime's Python API, over a `Queue` and over HTTP through `Client`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.http_transport import running_server, server_config
from workclaim import Queue, Settings, Status, StorageFailed
from workclaim.client import Client
from workclaim.server import create_app
from workclaim.worker import Context, Worker


@contextmanager
def source(kind: str, url: str) -> Iterator[Any]:
    """A Queue, or a Client on a live server over the same store."""
    if kind == "queue":
        with Queue(url) as q:
            yield q
        return
    app = create_app(url, server_config(Settings()))
    with running_server(app) as base, Client(base) as client:
        yield client


@contextmanager
def running(worker: Worker) -> Iterator[None]:
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["queue", "http"])
def test_handler_results_complete_and_exceptions_fail(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with Queue(url) as q:
        ids = q.enqueue_many("jobs", [{"n": n} for n in range(6)])
    done = threading.Semaphore(0)
    with source(kind, url) as src:
        worker = Worker(src, queues=["jobs"], concurrency=3, wait=1.0)

        @worker.handler
        def double(ctx: Context) -> int:
            try:
                assert ctx.attempt == 1 and ctx.time_left() > 0
                if ctx.lease.payload["n"] == 5:
                    raise RuntimeError("no fives")
                return int(ctx.lease.payload["n"]) * 2
            finally:
                done.release()

        with running(worker):
            for _ in ids:
                assert done.acquire(timeout=30)
    # run() returned: its shutdown waited for every handler and its complete/fail call
    with Queue(url) as q:
        items = [q.get(i) for i in ids]
    assert [i.result for i in items[:5]] == [0, 2, 4, 6, 8]
    assert all(i.status is Status.DONE for i in items[:5])
    failed = items[5]
    assert failed.status is Status.QUEUED and failed.attempts == 1
    assert failed.last_error is not None
    assert "RuntimeError: no fives" in failed.last_error and "Traceback" in failed.last_error


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["queue", "http"])
def test_a_lost_lease_sets_the_event(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with Queue(url) as q:
        item_id = q.enqueue("jobs", 1)
        seen: list[bool] = []
        saw = threading.Event()
        with source(kind, url) as src:
            worker = Worker(
                src, queues="jobs", lease_seconds=2.0, heartbeat_fraction=0.05, wait=1.0
            )

            @worker.handler
            def steal(ctx: Context) -> None:
                q.complete(ctx.lease)  # someone else ends the lease behind the worker's back
                seen.append(ctx.lost.wait(20))
                saw.set()

            with running(worker):
                assert saw.wait(30)
        assert seen == [True]
        assert q.get(item_id).status is Status.DONE


def test_worker_arguments_are_checked(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}") as q:
        bad: dict[str, Any]
        for bad in (
            {"concurrency": 0},
            {"lease_seconds": 0},
            {"grace": -1},
            {"queues": []},
            {"max_batch": 0},
            {"max_batch": 1001},
        ):
            options: dict[str, Any] = {"queues": "jobs"} | bad
            with pytest.raises(ValueError):
                Worker(q, **options)
        with pytest.raises(ValueError, match="handler"):
            Worker(q, queues="jobs").run(install_signals=False)

        class ClaimOnly:  # a source without complete_and_claim cannot be asked to fuse
            claim = heartbeat = complete = release = fail = None

        assert not Worker(ClaimOnly(), queues="jobs").fused  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="complete_and_claim"):
            Worker(ClaimOnly(), queues="jobs", fused=True)  # type: ignore[arg-type]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("found_by", ["heartbeat", "release at shutdown"])
def test_every_lost_lease_is_counted_once_and_logged(
    tmp_path: Path, found_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workclaim.worker")
    with Queue(f"sqlite:///{tmp_path / 'w.db'}") as q:
        item_id = q.enqueue("jobs", 1)
        by_heartbeat = found_by == "heartbeat"
        worker = Worker(
            q,
            queues="jobs",
            lease_seconds=2.0 if by_heartbeat else 60.0,
            heartbeat_fraction=0.05 if by_heartbeat else 0.9,
            grace=0.0,
            wait=0.2,
        )

        @worker.handler
        def lose_it(ctx: Context) -> int:
            q.complete(ctx.lease)  # the lease ends behind the runtime's back
            if by_heartbeat:
                assert ctx.lost.wait(20)  # a heartbeat finds out; the result is dropped
            worker.stop()  # otherwise shutdown's release finds out
            assert (ctx.lost if by_heartbeat else ctx.stopping).wait(20)
            return 1

        worker.run(install_signals=False)
        assert q.get(item_id).status is Status.DONE
    assert (worker.completed, worker.failed, worker.released, worker.lost) == (0, 0, 0, 1)
    stopped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped:")]
    assert stopped == ["stopped: 0 completed, 0 failed, 0 released, 1 lost"]


class SlowReplies:
    """A Queue whose claims and heartbeats answer `delay` seconds after the store granted
    them (a slow network or a busy server)."""

    def __init__(self, queue: Queue, delay: float) -> None:
        self.queue, self.delay = queue, delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)

    def _late(self, value: Any) -> Any:
        time.sleep(self.delay)  # the reply is on its way; the lease's time runs already
        return value

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        return self._late(self.queue.claim(*args, **kwargs))

    def complete_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        return self._late(self.queue.complete_and_claim(*args, **kwargs))

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        return self._late(self.queue.heartbeat(*args, **kwargs))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fused", [True, False])
def test_time_left_never_counts_a_slow_reply_as_lease_time(tmp_path: Path, fused: bool) -> None:
    lease, delay = 6.0, 0.5
    with Queue(f"sqlite:///{tmp_path / 'w.db'}") as q:
        q.enqueue("jobs", 1)
        worker = Worker(
            SlowReplies(q, delay), queues="jobs", lease_seconds=lease, fused=fused, wait=0.2
        )
        seen: dict[str, float] = {}

        @worker.handler
        def measure(ctx: Context) -> None:
            seen["claimed"] = ctx.time_left()
            first = ctx.lease.expires_at
            deadline = time.monotonic() + 20  # only against a hang: heartbeats come every 2 s
            while ctx.lease.expires_at == first and time.monotonic() < deadline:
                time.sleep(0.05)
            seen["renewed"] = ctx.time_left()
            worker.stop()

        worker.run(install_signals=False)
    # The store started the lease before its reply took `delay`: at least that much is gone.
    assert seen["claimed"] <= lease - delay
    assert 0 < seen["renewed"] <= lease - delay


class DiskFailsAfterFirstItem:
    """A Queue whose store's disk fails once the first item was handled: from then on every
    call raises `StorageFailed`, as a queue does after SQLite's fsync failed (the fault suite's
    tests/faults/test_fsync.py makes that happen for real)."""

    def __init__(self, queue: Queue) -> None:
        self.queue, self.failed = queue, threading.Event()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.queue, name)
        if name not in {"claim", "complete_and_claim", "complete", "release", "heartbeat"}:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.failed.is_set():
                raise StorageFailed("disk I/O error")
            return attr(*args, **kwargs)

        return call


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fused", [True, False])
def test_a_failed_disk_stops_the_worker_and_run_raises(tmp_path: Path, fused: bool) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}") as q:
        q.enqueue_many("jobs", [1, 2, 3])
        source = DiskFailsAfterFirstItem(q)
        worker = Worker(source, queues="jobs", fused=fused, wait=0.2, concurrency=1)

        @worker.handler
        def handle(ctx: Context) -> None:
            source.failed.set()

        with pytest.raises(StorageFailed):
            worker.run(install_signals=False)
        assert worker.round_trips < 10  # it stopped; it did not retry a refusing store
