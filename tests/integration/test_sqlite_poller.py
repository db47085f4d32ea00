"""The SQLite `data_version` poller survives an error and keeps waking waiters.

The poller is the only thing that tells a waiting claim about another process's commit. One
SQLite error on its connection (here injected into a real connection: its `PRAGMA data_version`
raises once) must not end cross-process wake-ups for the rest of the process.
"""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from workclaim import BackendUnavailable, Queue, Settings
from workclaim.models import Lease

_POLLER = "workclaim-sqlite-poller"  # the poller thread's name


class _Faults:
    """What the injected connections saw: the poller's busy timeout, and whether its second
    `data_version` read (the first one after its baseline) has failed yet."""

    def __init__(self) -> None:
        self.failed = threading.Event()
        self.reads = 0
        self.busy_timeouts: list[int] = []


def _connection_class(faults: _Faults) -> type[sqlite3.Connection]:
    class FailsOnce(sqlite3.Connection):
        """A real connection whose second `PRAGMA data_version` raises a disk I/O error."""

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.strip().upper() == "PRAGMA DATA_VERSION":
                faults.reads += 1
                if faults.reads == 1:
                    busy = super().execute("PRAGMA busy_timeout").fetchone()[0]
                    faults.busy_timeouts.append(int(busy))
                if faults.reads == 2:
                    faults.failed.set()
                    raise sqlite3.OperationalError("disk I/O error (injected)")
            return super().execute(sql, *args)

    return FailsOnce


def _enqueue(url: str) -> None:
    with Queue(url) as q:
        q.enqueue("jobs", {"from": "another process"})


@pytest.mark.timeout(90)
def test_a_poller_error_does_not_end_cross_process_wakeups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = _Faults()
    connect = sqlite3.connect

    def connect_poller_with_faults(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        if threading.current_thread().name == _POLLER:
            kwargs["factory"] = _connection_class(faults)
        conn: sqlite3.Connection = connect(*args, **kwargs)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect_poller_with_faults)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    got: list[list[Lease]] = []
    with Queue(url, settings=Settings(timeout=2.5)) as q:

        def wait_for_work() -> None:
            try:
                got.append(q.claim("jobs", worker="w", wait=600))
            except BackendUnavailable:  # closed by the test while still waiting
                got.append([])

        waiter = threading.Thread(target=wait_for_work)
        waiter.start()
        try:
            assert faults.failed.wait(30), "the poller never read data_version twice"
            proc = mp.get_context("spawn").Process(target=_enqueue, args=(url,))
            proc.start()
            proc.join(30)
            assert proc.exitcode == 0
            waiter.join(30)  # only a wake-up ends the 600 s wait this early
        finally:
            q.close()
            waiter.join(30)
    assert [[lease.payload for lease in leases] for leases in got] == [
        [{"from": "another process"}]
    ]
    assert faults.busy_timeouts[0] == 2500  # the poller waits on locks as long as Settings say
