"""huey with `SqliteHuey` (its SQLite storage) at workclaim's durability: WAL with
`synchronous=FULL` (`fsync=True`). Each worker process runs what a huey consumer worker thread
runs, `huey.dequeue()` then `huey.execute(task)`, until dequeue finds the queue empty; the
dequeue (huey's claim: select then delete the row in one write transaction) is timed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from systems import _stores
from systems.base import QUEUE, Recorder

_recorder: Recorder | None = None


def _record(number: int) -> None:
    if _recorder is not None:
        _recorder.item(number)


def _huey(path: str, fsync: bool) -> Any:
    from huey import SqliteHuey

    huey = SqliteHuey("peers", filename=path, fsync=fsync, journal_mode="wal", timeout=60)
    task = huey.task(name=QUEUE)(_record)
    return huey, task


class Huey:
    backend = "sqlite"
    claim_note = "huey.dequeue() (SqliteStorage: select + delete in one write transaction)"
    config_note = (
        "SqliteHuey(fsync=True, journal_mode='wal'): synchronous=FULL like workclaim's default; "
        "results off for a None return (huey's default store_none=False); one dequeue/execute "
        "loop per process, as a consumer worker thread runs it"
    )

    def prepare(self, env: dict[str, Any], run_id: str) -> dict[str, Any]:
        path = _stores.sqlite_path(env, run_id, "huey")
        return {"path": str(path)}

    def prefill(self, ctx: dict[str, Any], n: int) -> None:
        huey, task = _huey(ctx["path"], fsync=False)
        huey.storage.conn  # noqa: B018  (opens the file and creates huey's tables)
        rows = [("peers", huey.serialize_task(task.s(i)), 0) for i in range(n)]
        with sqlite3.connect(ctx["path"]) as conn:
            conn.executemany("insert into task (queue, data, priority) values (?, ?, ?)", rows)
        huey.storage.close()

    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None:
        global _recorder
        _recorder = rec
        huey, _ = _huey(ctx["path"], fsync=True)
        huey.storage.queue_size()  # connect before the clock starts
        start()
        while True:
            task = rec.timed(huey.dequeue)
            if task is None:
                break
            huey.execute(task)
        huey.storage.close()

    def cleanup(self, ctx: dict[str, Any]) -> None:
        _stores.sqlite_remove(_stores.Path(ctx["path"]))


def make() -> Huey:
    return Huey()
