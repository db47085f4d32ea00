"""A `Worker` inside another program: run in one of its threads, under the program's own
signal handling (docs/worker.md), and its per-item hook `on_finished`."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from workclaim import Queue, Status
from workclaim.models import Lease
from workclaim.retry import Backoff
from workclaim.worker import Context, Outcome, Worker

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_a_worker_in_a_thread_leaves_the_programs_sigterm_handler_and_stops_on_its_request(
    tmp_path: Path,
) -> None:
    """A real process: its own SIGTERM handler stays in force while the worker runs in a thread
    (the worker installs none off the main thread), and on SIGTERM it stops the worker with
    `stop()`: the finished items are done, the one in flight released, nothing lost."""
    url = f"sqlite:///{tmp_path / 'work.db'}"
    with Queue(url) as q:
        q.enqueue_many("jobs", [1, 2, 3, 4])
        slow = q.enqueue("jobs", "slow")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-m", "tests.support.embedded_worker", url],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip()
        assert ready == "ready on_sigterm", ready  # the program's handler, not the worker's
        proc.send_signal(signal.SIGTERM)
        out = proc.stdout.read().splitlines()
        assert proc.wait(60) == 0
    assert out[0] == "program: SIGTERM"
    summary = json.loads(out[-1])
    assert summary["alive"] is False
    with Queue(url) as q:
        statuses = {item_id: q.get(item_id).status for item_id in range(1, slow + 1)}
    # Every item ended as the hook heard: done ones completed, the slow one (in flight at
    # SIGTERM, past the grace period) released and queued again; none left claimed.
    assert Status.CLAIMED not in statuses.values()
    done = sorted(i for i, s in statuses.items() if s is Status.DONE)
    queued = sorted(i for i, s in statuses.items() if s is Status.QUEUED)
    assert sorted(i for i, o in summary["finished"] if o == "completed") == done
    assert sorted(i for i, o in summary["finished"] if o == "released") == queued
    assert slow in queued
    assert summary["completed"] == len(done) >= 3 and summary["released"] == len(queued)


def _run_until(worker: Worker, finished: threading.Event) -> None:
    """Run the worker in a thread until `finished`, then stop it."""
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert finished.wait(60)
    finally:
        worker.stop()
        thread.join(60)
    assert not thread.is_alive()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fused", [True, False])
def test_on_finished_hears_each_item_once_after_the_store_acknowledged_it(
    tmp_path: Path, fused: bool
) -> None:
    """Completions (fused or one by one) and failures, retried and dead: the hook runs once per
    lease, when the store already shows the outcome."""
    url = f"sqlite:///{tmp_path / 'work.db'}"
    seen: list[tuple[int, Outcome, Status]] = []
    lock = threading.Lock()
    all_in = threading.Event()

    with Queue(url) as q:
        ok = q.enqueue_many("jobs", list(range(6)))
        bad = q.enqueue("jobs", "fail", max_attempts=2)

        def on_finished(lease: Lease, outcome: Outcome) -> None:
            status = q.get(lease.id).status  # what the store holds as the hook runs
            with lock:
                seen.append((lease.id, outcome, status))
                if len(seen) == len(ok) + 2:  # two attempts of `bad`
                    all_in.set()

        worker = Worker(
            q,
            queues="jobs",
            concurrency=3,
            fused=fused,
            on_finished=on_finished,
            grace=5,
            backoff=Backoff(base=0.0, cap=0.0),  # the retry is due at once
        )

        @worker.handler
        def handle(ctx: Context) -> None:
            if ctx.lease.payload == "fail":
                raise RuntimeError("no")

        _run_until(worker, all_in)

    completed = sorted((i, s) for i, o, s in seen if o is Outcome.COMPLETED)
    assert completed == [(i, Status.DONE) for i in ok]
    failed = [(i, s) for i, o, s in seen if o is Outcome.FAILED]
    assert failed == [(bad, Status.QUEUED), (bad, Status.DEAD)]


@pytest.mark.timeout(120)
def test_an_exception_in_on_finished_is_logged_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The hook raises on every item: each is still done, the worker goes on with the next,
    and each raise is logged with its item."""
    url = f"sqlite:///{tmp_path / 'work.db'}"
    calls: list[int] = []
    all_in = threading.Event()
    with Queue(url) as q:
        ids = q.enqueue_many("jobs", list(range(5)))

        def on_finished(lease: Lease, outcome: Outcome) -> None:
            calls.append(lease.id)
            if len(calls) == len(ids):
                all_in.set()
            raise ValueError("hook broke")

        worker = Worker(q, queues="jobs", concurrency=2, on_finished=on_finished, grace=5)
        worker.handler(lambda ctx: None)
        with caplog.at_level(logging.ERROR, logger="workclaim.worker"):
            _run_until(worker, all_in)
        assert sorted(calls) == ids
        assert [q.get(i).status for i in ids] == [Status.DONE] * len(ids)
        assert worker.completed == len(ids)
    raised = [r for r in caplog.records if "on_finished raised" in r.getMessage()]
    assert len(raised) == len(ids) and all(r.exc_info for r in raised)


def test_a_lease_lost_to_another_worker_is_reported_lost(tmp_path: Path) -> None:
    """The store refuses the completion (the lease expired and another worker took the item):
    the hook hears `lost`, once, and never `completed`."""
    url = f"sqlite:///{tmp_path / 'work.db'}"
    seen: list[tuple[int, Outcome]] = []
    heard = threading.Event()
    stolen = threading.Event()
    running = threading.Event()
    with Queue(url) as q:
        item = q.enqueue("jobs", "x")

        def on_finished(lease: Lease, outcome: Outcome) -> None:
            seen.append((lease.id, outcome))
            heard.set()

        worker = Worker(
            q, queues="jobs", lease_seconds=0.2, on_finished=on_finished, grace=5, fused=False
        )
        worker.heartbeat_every = 3600.0  # no renewal: the lease expires and is taken

        @worker.handler
        def handle(ctx: Context) -> None:
            running.set()
            assert stolen.wait(30)

        def steal() -> None:
            assert running.wait(30)  # the worker holds the item; take it once the lease expires
            while not q.claim("jobs", worker="other", lease_seconds=60, wait=1.0):
                pass
            stolen.set()

        thief = threading.Thread(target=steal)
        thief.start()
        _run_until(worker, heard)
        thief.join(60)
    assert seen == [(item, Outcome.LOST)]
