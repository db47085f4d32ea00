"""The raw baselines: the bare claim and completion with no library (SQL through sqlite3, psycopg
or mysqlclient, Lua through redis-py), single and batched, from `benchmarks/raw/<backend>.py`. Each
worker claims (one item, or a batch) and completes each item until a claim comes back empty,
at the same durability as workclaim's default (SQLite WAL synchronous=FULL)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from systems import _stores
from systems.base import Recorder

REPO = Path(__file__).resolve().parents[3]
MODULES = {"sqlite": "sqlite", "postgres": "postgres", "redis": "redis", "mariadb": "mariadb"}


def _module(backend: str) -> ModuleType:
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    return importlib.import_module(f"benchmarks.raw.{MODULES[backend]}")


class Raw:
    def __init__(self, backend: str, batch: int) -> None:
        self.backend = backend
        self.batch = batch
        self.claim_note = (
            f"RawWorker.claim({batch}): START TRANSACTION, SELECT ... FOR UPDATE SKIP LOCKED, "
            "UPDATE, COMMIT (four round trips)"
            if backend == "mariadb"
            else f"RawWorker.claim({batch}): one SQL statement / Lua script"
        )
        self.config_note = (
            f"benchmarks/raw/{MODULES[backend]}.py: claim({batch}) then complete(id, token) "
            "per item, one connection per worker"
        )

    def unavailable(self) -> str | None:
        try:
            _module(self.backend)
        except ImportError as exc:
            return f"no raw baseline module for {self.backend} yet ({exc})"
        return None

    def expected(self, n: int) -> Iterable[int] | None:
        """Raw items are numbered by the store (1..n in SQL); only counts are compared."""
        return None

    def prepare(self, env: dict[str, Any], run_id: str) -> dict[str, Any]:
        ctx: dict[str, Any] = {"env": env}
        if self.backend == "sqlite":
            path = _stores.sqlite_path(env, run_id, "raw")
            ctx.update(url=f"sqlite:///{path}", path=f"{path}.raw")
        elif self.backend == "postgres":
            schema = _stores.pg_schema(run_id, "raw")
            ctx.update(url=_stores.with_query(env["pg_url"], schema=schema), schema=f"{schema}_raw")
        elif self.backend == "mariadb":
            database = _stores.mariadb_database(run_id, "raw")
            ctx.update(url=_stores.mariadb_url(env["mariadb_url"], database))
        else:
            prefix = f"peers-raw-{run_id}"
            ctx.update(url=_stores.with_query(env["redis_url"], prefix=prefix), prefix=prefix)
        return ctx

    def prefill(self, ctx: dict[str, Any], n: int) -> None:
        _module(self.backend).prefill(ctx["url"], n)

    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None:
        worker = _module(self.backend).open_worker(ctx["url"])
        try:
            start()
            while True:
                claimed = rec.timed(worker.claim, self.batch)
                if not claimed:
                    return
                for item_id, token in claimed:
                    worker.complete(item_id, token)
                    rec.item(item_id)
        finally:
            worker.close()

    def cleanup(self, ctx: dict[str, Any]) -> None:
        if self.backend == "sqlite":
            _stores.sqlite_remove(Path(ctx["path"]))
        elif self.backend == "postgres":
            _stores.pg_drop_schema(ctx["env"]["pg_url"], ctx["schema"])
        elif self.backend == "mariadb":
            _module("mariadb").drop(ctx["url"])  # the `<database>_raw` it made
        else:
            _stores.redis_cleanup(ctx["env"], ctx["prefix"])


def make(backend: str, batch: int) -> Raw:
    return Raw(backend, batch)
