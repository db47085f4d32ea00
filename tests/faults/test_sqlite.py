"""SQLite under faults: eight racing processes, a file locked elsewhere past busy_timeout, SIGKILL
during writes, and a full disk. Each scenario ends with heal, drain and the history checker."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import FaultRun
from tests.support.servers import unavailable
from workclaim import Queue, Settings
from workclaim.bench.history import load_history
from workclaim.errors import BackendError, BackendUnavailable

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _errors(run: FaultRun) -> list[str]:
    return [str(e["error"]) for e in load_history(run.dir.glob("*.jsonl")) if e.get("error")]


def test_eight_processes_see_no_database_is_locked(tmp_path: Path, runs: list[FaultRun]) -> None:
    run = FaultRun("sqlite: 8 processes racing", _url(tmp_path / "q.db"), tmp_path, lease=5.0)
    runs.append(run)
    racers = [run.spawn(run.config(f"r{i}", idle_wait=0.5)) for i in range(8)]
    run.wait_ready(racers)
    run.enqueue(800)  # released together: every worker is waiting for work
    assert run.wait_until_finished(120)
    outcome = run.finish()
    assert outcome.violations == 0, outcome.describe()
    errors = [e for e in _errors(run) if "LeaseLost" not in e]
    assert not [e for e in errors if "locked" in e.lower()], errors[:5]
    assert outcome.indeterminate == 0, errors[:5]


class ExternalLock:
    """Another process holding `BEGIN EXCLUSIVE` on the database until told to let go."""

    def __init__(self, path: Path) -> None:
        script = (
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
            "c.execute('ROLLBACK')\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(30)
        self.process.stdout.close()


def test_file_locked_past_busy_timeout_is_backend_unavailable(
    tmp_path: Path, runs: list[FaultRun]
) -> None:
    path = tmp_path / "q.db"
    run = FaultRun("sqlite: file locked past busy_timeout", _url(path), tmp_path, timeout=0.5)
    runs.append(run)
    run.enqueue(100)
    run.wait_ready([run.spawn(run.config(f"l{i}", job_seconds=0.01)) for i in range(3)])
    lock = ExternalLock(path)
    run.faults += 1
    q = run.admin
    for call in (
        lambda: q.claim("faults", worker="probe"),
        lambda: q.enqueue("faults", {"n": -1}),
        lambda: Queue(_url(path), settings=Settings(timeout=0.5)),
    ):
        with pytest.raises(BackendUnavailable, match="retry later"):
            call()
    lock.release()
    heal = time.monotonic_ns()
    assert run.wait_until_finished(60)
    outcome = run.finish(recovery_from_ns=heal)
    assert outcome.violations == 0, outcome.describe()
    assert outcome.items == 100  # the refused enqueue wrote nothing
    assert run.admin.stats("faults").total == 100


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _kill_writers(run: FaultRun, seconds: float, rng: random.Random) -> None:
    """Kill enqueuers and workers at random moments of their writes, respawning each; every
    process is up (its queue open) before the next kill, so each kill can land in a write."""
    writers = [run.spawn_enqueuer("e0", batch=10, payload_bytes=2_000)]
    workers = [run.spawn(run.config(f"k{i}", job_seconds=0.0)) for i in range(3)]
    run.wait_ready(writers + workers)
    n = 3
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(rng.uniform(0.1, 0.3))  # the storm's rhythm, not synchronisation
        pool = writers if rng.random() < 0.5 else workers
        victim = pool.pop(rng.randrange(len(pool)))
        run.kill(victim)
        victim.join(10)
        n += 1
        if pool is writers:
            fresh = run.spawn_enqueuer(f"e{n}", batch=10, payload_bytes=2_000)
        else:
            fresh = run.spawn(run.config(f"k{n}", job_seconds=0.0))
        pool.append(fresh)
        run.wait_ready([fresh])
    for writer in writers:
        run.kill(writer)
        writer.join(10)
        run.faults -= 1  # stopping the last writer is not a fault


@pytest.mark.parametrize("seconds", [3.0, pytest.param(30.0, marks=pytest.mark.soak)])
def test_sigkill_during_writes_keeps_the_file_intact(
    tmp_path: Path, runs: list[FaultRun], seconds: float
) -> None:
    path = tmp_path / "q.db"
    run = FaultRun(f"sqlite: SIGKILL writers {seconds:g}s", _url(path), tmp_path, lease=1.0)
    runs.append(run)
    _kill_writers(run, seconds, random.Random(11))
    heal = time.monotonic_ns()
    started = time.monotonic()
    assert _integrity(path) == "ok"
    reopen_s = time.monotonic() - started
    assert run.wait_until_finished(120)
    outcome = run.finish(recovery_from_ns=heal, integrity_check_s=round(reopen_s, 3))
    assert outcome.violations == 0, outcome.describe()
    assert outcome.items > 0, "no enqueue was acknowledged: the storm tested nothing"
    assert _integrity(path) == "ok"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def test_full_disk_fails_clearly_loses_nothing_and_recovers(
    small_disk: Path, tmp_path: Path, runs: list[FaultRun]
) -> None:
    path = small_disk / "q.db"
    run = FaultRun("sqlite: disk full (512 KiB tmpfs)", _url(path), tmp_path, lease=2.0)
    runs.append(run)
    acked: list[int] = []
    error: BackendError | None = None
    for _ in range(1_000):
        try:
            acked += run.enqueue(20)
        except BackendError as exc:
            error = exc
            break
    assert error is not None, "the disk never filled"
    assert "full" in str(error), str(error)
    run.faults += 1
    # Work goes on as far as the disk allows; nothing acknowledged may go missing.
    with contextlib.suppress(BackendError):
        [lease] = run.admin.claim("faults", worker="probe", lease_seconds=2)
        run.admin.complete(lease)
    for item in acked:
        run.admin.get(item)
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    heal = time.monotonic_ns()
    for i in range(2):
        run.spawn(run.config(f"d{i}", job_seconds=0.0), events=False)
    assert run.wait_until_finished(120)
    outcome = run.finish(recovery_from_ns=heal, first_error=str(error)[:80])
    assert outcome.violations == 0, outcome.describe()
    assert outcome.items == len(acked)
    assert _integrity(path) == "ok"
