"""A failing fsync (EIO) under SQLite, from an LD_PRELOAD shim (tests/faults/fsyncshim.c) that
fails every fsync/fdatasync of the database's files while a trigger file exists. The calls made
meanwhile fail with `StorageFailed`; that queue refuses every later call, even once the disk is
healthy again (the OS may have dropped the unsynced pages, and a retried sync would falsely
succeed); a new queue recovers from what the disk holds; nothing acknowledged is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.faults.fakeclock import compile_shim
from tests.faults.harness import FaultRun
from workclaim.bench.history import load_history

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

SOURCE = Path(__file__).with_name("fsyncshim.c")
PROBE = """
import os, sys
from workclaim import Queue
from workclaim.errors import StorageFailed
url, trigger = sys.argv[1], sys.argv[2]
q = Queue(url)
acked = q.enqueue("probe", {"n": 1})
open(trigger, "w").close()
try:
    q.enqueue("probe", {"n": 2})
    print("enqueue-ok")
except StorageFailed as exc:
    print("failed:", exc)
os.remove(trigger)
try:
    q.claim("probe", worker="w")
    print("continued")
except StorageFailed:
    print("refused")
fresh = Queue(url)
print("acked-there:", fresh.get(acked).id == acked)
"""


class FailingDisk:
    """The shim's environment for processes spawned under `applied()`; `fail()` / `heal()`."""

    def __init__(self, tmp_path: Path, database_dir: Path) -> None:
        self.library = compile_shim(SOURCE, tmp_path)
        self.trigger = tmp_path / "fsync-fails"
        self.env = {
            "LD_PRELOAD": str(self.library),
            "WCF_FSYNC_FAIL": str(self.trigger),
            "WCF_FSYNC_MATCH": str(database_dir),
        }

    def fail(self) -> None:
        self.trigger.touch()

    def heal(self) -> None:
        self.trigger.unlink()

    @contextmanager
    def applied(self) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def test_failed_fsync_refuses_the_queue_from_then_on(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    disk = FailingDisk(tmp_path, db_dir)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, f"sqlite:///{db_dir / 'q.db'}", str(disk.trigger)],
        env={**os.environ, **disk.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("failed: the disk failed an I/O"), done.stdout + done.stderr
    assert lines[1] == "refused", done.stdout  # never goes on with the same queue
    assert lines[2] == "acked-there: True", done.stdout


@pytest.mark.parametrize("seconds", [1.5, pytest.param(10.0, marks=pytest.mark.soak)])
def test_failing_fsync_under_load_loses_nothing(
    tmp_path: Path, runs: list[FaultRun], seconds: float
) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    disk = FailingDisk(tmp_path, db_dir)
    run = FaultRun(f"sqlite: fsync EIO {seconds:g}s", f"sqlite:///{db_dir / 'q.db'}", tmp_path)
    runs.append(run)
    run.enqueue(200)
    with disk.applied():
        workers = [run.spawn(run.config(f"f{i}", job_seconds=0.02)) for i in range(3)]
    run.wait_ready(workers)
    time.sleep(0.5)  # work flows before the disk fails
    disk.fail()
    run.faults += 1
    time.sleep(seconds)  # the outage: every commit of the workers fails
    disk.heal()
    heal = time.monotonic_ns()
    assert run.wait_until_finished(120)
    outcome = run.finish(recovery_from_ns=heal)
    assert outcome.violations == 0, outcome.describe()
    assert outcome.items == 200
    assert all(w.exitcode == 0 for w in workers), [w.exitcode for w in workers]
    errors = [str(e["error"]) for e in load_history(run.dir.glob("*.jsonl")) if e.get("error")]
    failed = [e for e in errors if e.startswith("StorageFailed")]
    assert failed, f"no call failed while fsync did: {errors[:5]}"
    assert outcome.indeterminate >= len(failed)
