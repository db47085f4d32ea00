"""SQLite specifics: schema versions, memory databases, outside locks, cross-process wake-ups."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from workclaim import BackendUnavailable, Queue, SchemaMismatch, Settings


def _enqueue_after(url: str, ready: mp.synchronize.Event, go: mp.synchronize.Event) -> None:
    ready.set()
    go.wait(30)
    with Queue(url) as q:
        q.enqueue("jobs", {"from": "another process"})


def test_memory_database_is_shared_by_threads_of_one_queue() -> None:
    import threading

    with Queue("sqlite:///:memory:") as q:
        q.enqueue_many("jobs", list(range(100)))
        got: list[int] = []
        lock = threading.Lock()

        def work() -> None:
            while leases := q.claim("jobs", worker="w", limit=3):
                for lease in leases:
                    q.complete(lease)
                with lock:
                    got.extend(lease.id for lease in leases)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(got) == list(range(1, 101))
        assert q.stats("jobs").done == 100


def test_each_memory_url_is_its_own_database() -> None:
    with Queue("sqlite:///:memory:") as a, Queue("sqlite:///:memory:") as b:
        a.enqueue("jobs", 1)
        assert b.stats("jobs").total == 0


def test_a_fresh_database_without_auto_migrate_says_to_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with pytest.raises(SchemaMismatch, match="workclaim migrate"):
        Queue(url, settings=Settings(auto_migrate=False))
    Queue(url).close()
    Queue(url, settings=Settings(auto_migrate=False)).close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Queue(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(SchemaMismatch, match="newer"):
        Queue(f"sqlite:///{path}")


def test_a_database_locked_elsewhere_gives_a_retryable_error(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    url = f"sqlite:///{path}?busy_timeout=200"
    with Queue(url) as q:
        q.enqueue("jobs", 1)
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            with pytest.raises(BackendUnavailable, match="locked"):
                q.claim("jobs", worker="w1")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert [lease.payload for lease in q.claim("jobs", worker="w1")] == [1]


@pytest.mark.parametrize("mode", ["full", "normal"])
def test_synchronous_modes(tmp_path: Path, mode: str) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}?synchronous={mode}") as q:
        q.enqueue("jobs", 1)
        conn = q.backend._conn()  # type: ignore[attr-defined]
        level = conn.execute("PRAGMA synchronous").fetchone()[0]
        assert level == {"full": 2, "normal": 1}[mode]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.timeout(30)
def test_a_waiter_is_woken_by_an_enqueue_in_another_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    with Queue(url) as q:
        proc = ctx.Process(target=_enqueue_after, args=(url, ready, go))
        proc.start()
        try:
            assert ready.wait(20)
            go.set()
            leases = q.claim("jobs", worker="w1", wait=300)  # only a wake-up ends this in time
        finally:
            proc.join(20)
        assert [lease.payload for lease in leases] == [{"from": "another process"}]
        assert proc.exitcode == 0


@pytest.mark.timeout(60)
def test_a_commit_before_the_poller_starts_still_wakes_the_waiter(tmp_path: Path) -> None:
    # The waiter looked (generation read), then another connection committed, and only then
    # does the waiter start waiting, which starts the data_version poller: the commit happened
    # before the poller's baseline and must still wake it.
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with Queue(url) as waiter, Queue(url) as producer:
        wakeup = waiter.backend.wakeup()
        generation = wakeup.generation()
        producer.enqueue("jobs", 1)
        assert wakeup.wait(generation, timeout=600) is True
