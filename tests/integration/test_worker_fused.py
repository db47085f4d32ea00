"""The worker runtime's fused path (complete_and_claim) with real processes on every backend.

Worker processes run `workclaim worker` over one store; the handler logs every execution. The
store's recorded history is then checked: every item done, completed exactly once, by the lease
that last claimed it, and a worker SIGKILLed in the middle of a batch loses nothing (its leases
expire and another process runs those items again).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.http_process import serve_process
from workclaim import EventKind, Queue, Status
from workclaim.client import Client
from workclaim.worker import Context, Worker

LOG_ENV = "WORKCLAIM_TEST_FUSED_LOG"
KILL_ENV = "WORKCLAIM_TEST_FUSED_KILL_AFTER"
ROOT = Path(__file__).parents[2]

_runs = 0
_runs_lock = threading.Lock()


def log_and_maybe_die(ctx: Context) -> dict[str, int]:
    """The handler of the worker processes: log the execution; with KILL_ENV set, SIGKILL the
    own process at that many executions (other items finished or running at that moment)."""
    global _runs
    with open(os.environ[LOG_ENV], "a", encoding="utf-8") as fh:
        fh.write(f"{ctx.lease.id} {ctx.token} {os.getpid()}\n")
    with _runs_lock:
        _runs += 1
        if _runs == int(os.environ.get(KILL_ENV, "0")):
            os.kill(os.getpid(), signal.SIGKILL)
    return {"n": ctx.lease.payload}


@dataclass
class WorkerProcess:
    """A `workclaim worker` process and the file its stderr goes to."""

    proc: subprocess.Popen[bytes]
    err: Path

    def stderr(self) -> str:
        return self.err.read_text()


def start_worker(
    url: str, log: Path, *extra: str, kill_after: int = 0, server: str | None = None
) -> WorkerProcess:
    """Start `workclaim worker` (stderr to a file beside `log`); returns once the worker says
    it is claiming, so its SIGTERM handler is installed."""
    env = dict(os.environ, **{LOG_ENV: str(log), KILL_ENV: str(kill_after)})
    cmd = [
        sys.executable, "-m", "workclaim", "worker",
        "tests.integration.test_worker_fused:log_and_maybe_die",
        *(["--server", server] if server else ["--db", url]),
        "--queue", "jobs", "--concurrency", "8", "--wait", "1", "--grace", "10", *extra,
    ]  # fmt: skip
    err = log.with_name(f"{log.stem}-{time.monotonic_ns()}.err")
    with err.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.monotonic() + 60
    while ": claiming from " not in err.read_text():
        assert proc.poll() is None, err.read_text()
        assert time.monotonic() < deadline, err.read_text()
        time.sleep(0.05)
    return WorkerProcess(proc, err)


def wait_until_done(q: Queue, total: int, workers: list[WorkerProcess]) -> None:
    """Until the store says every item is done; fails if every worker process has exited."""
    deadline = time.monotonic() + 120
    while q.stats("jobs").done < total:
        assert any(w.proc.poll() is None for w in workers), [w.stderr() for w in workers]
        assert time.monotonic() < deadline, q.stats("jobs")
        time.sleep(0.1)


def stop_all(workers: list[WorkerProcess]) -> list[str]:
    """SIGTERM every live worker and wait for it to exit; their stderr."""
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.proc.wait(timeout=60)
        finally:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()
    return [w.stderr() for w in workers]


def check_history(q: Queue, ids: list[int]) -> dict[int, list[Any]]:
    """Every item done and completed exactly once, by the token of its last claim, with claim
    tokens increasing; returns each item's history."""
    histories = {}
    for item_id in ids:
        item = q.get(item_id)
        assert item.status is Status.DONE, item
        events = q.history(item_id)
        kinds = [e.kind for e in events]
        claims = [e for e in events if e.kind is EventKind.CLAIMED]
        assert kinds.count(EventKind.COMPLETED) == 1, (item_id, kinds)
        assert kinds[-1] is EventKind.COMPLETED, (item_id, kinds)
        tokens = [int(e.token or 0) for e in claims]
        assert tokens == sorted(set(tokens)), (item_id, tokens)
        assert events[-1].token == claims[-1].token, (item_id, events)
        histories[item_id] = events
    return histories


def read_log(log: Path) -> list[tuple[int, int, int]]:
    """(item id, token, pid) of every execution."""
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(int(a), int(b), int(c)) for a, b, c in rows]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("via", ["db", "http"])
def test_worker_processes_complete_every_item_exactly_once(
    store_url: str, tmp_path: Path, via: str
) -> None:
    """Three worker processes, straight on the store or through `workclaim serve`."""
    log = tmp_path / "runs.log"
    with ExitStack() as stack:
        server = None
        if via == "http":
            server = stack.enter_context(serve_process(store_url, "--no-auth"))
        q = stack.enter_context(Queue(store_url))
        procs = [start_worker(store_url, log, server=server) for _ in range(3)]
        try:
            ids = q.enqueue_many("jobs", list(range(300)))  # all three are claiming already
            wait_until_done(q, len(ids), procs)
        finally:
            errs = stop_all(procs)
        assert all(w.proc.returncode == 0 for w in procs), errs
        assert all(" 0 lost" in err for err in errs), errs
        fusing = via == "db" or hasattr(Client, "complete_and_claim")  # the HTTP verb exists
        assert all(("fused (batch up to 8)" in err) == fusing for err in errs), errs
        check_history(q, ids)
        runs = read_log(log)
        assert sorted(i for i, _, _ in runs) == sorted(ids)  # each run once: no redelivery
        for i in ids:
            assert q.get(i).result == {"n": ids.index(i)}
        assert q.stats("jobs").claimed == 0


@pytest.mark.timeout(240)
def test_a_worker_killed_mid_batch_loses_nothing(store_url: str, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    with Queue(store_url) as q:
        ids = q.enqueue_many("jobs", list(range(200)))
        doomed = start_worker(store_url, log, "--lease-seconds", "1", kill_after=40)
        doomed.proc.wait(timeout=120)
        assert doomed.proc.returncode == -signal.SIGKILL
        held = q.stats("jobs").claimed  # leases the killed process held: they expire
        assert held >= 1
        survivor = start_worker(store_url, log, "--lease-seconds", "5")
        try:
            wait_until_done(q, len(ids), [survivor])
        finally:
            errs = stop_all([survivor])
        assert survivor.proc.returncode == 0, errs
        histories = check_history(q, ids)
        runs = read_log(log)
        by_pid = {pid for _, _, pid in runs}
        assert by_pid == {doomed.proc.pid, survivor.proc.pid}
        ran_twice = [i for i, n in Counter(i for i, _, _ in runs).items() if n > 1]
        claimed_twice = [i for i, ev in histories.items() if _claims(ev) > 1]
        # every item run twice was one the killed process held (claimed again after expiry)
        assert set(ran_twice) <= set(claimed_twice)
        assert len(claimed_twice) >= held
        for i in claimed_twice:
            kinds = [e.kind for e in histories[i]]
            assert EventKind.EXPIRED in kinds or EventKind.REQUEUED in kinds, kinds


def _claims(events: list[Any]) -> int:
    return sum(e.kind is EventKind.CLAIMED for e in events)


@pytest.mark.timeout(60)
def test_a_completion_refused_as_stale_is_counted_lost(store_url: str) -> None:
    with Queue(store_url) as q:
        item_id = q.enqueue("jobs", 1)
        stolen: list[Any] = []
        worker = Worker(q, queues="jobs", concurrency=1, wait=0.2, name="fused-w")
        assert worker.fused

        @worker.handler
        def lose_it(ctx: Context) -> int:
            q.release(ctx.lease)  # the lease ends behind the runtime's back...
            stolen.extend(
                q.claim("jobs", worker="thief", lease_seconds=60)
            )  # ...and someone claims it
            worker.stop()
            return 1

        worker.run(install_signals=False)
        assert (worker.completed, worker.lost) == (0, 1)
        item = q.get(item_id)
        assert item.status is Status.CLAIMED and item.worker == "thief"
        kinds = [e.kind for e in q.history(item_id)]
        assert kinds == [EventKind.CLAIMED, EventKind.RELEASED, EventKind.CLAIMED]
        assert [lease.id for lease in stolen] == [item_id]


@pytest.mark.timeout(60)
def test_a_result_that_is_not_json_fails_only_its_item(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}") as q:
        ids = q.enqueue_many("jobs", list(range(6)))
        finished = threading.Semaphore(0)
        worker = Worker(q, queues="jobs", concurrency=6, wait=0.2)

        @worker.handler
        def answer(ctx: Context) -> Any:
            try:
                return {1, 2} if ctx.lease.payload == 0 else ctx.lease.payload
            finally:
                finished.release()

        thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
        thread.start()
        try:
            for _ in ids:
                assert finished.acquire(timeout=30)
        finally:
            worker.stop()
            thread.join(30)
        bad = q.get(ids[0])
        assert bad.status is Status.DEAD and bad.attempts == 1  # not retried: it would repeat
        assert bad.last_error is not None and "refused" in bad.last_error
        assert [q.get(i).result for i in ids[1:]] == [1, 2, 3, 4, 5]
        assert (worker.completed, worker.failed, worker.lost) == (5, 1, 0)
