"""workclaim through its public `Queue` API: each worker process claims (one item, or a batch)
and completes each item, until a claim comes back empty. The claim call is timed directly."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from systems import _stores
from systems.base import QUEUE, Recorder

PREFILL_CHUNK = 2_000


def _settings(history: bool) -> Any:
    """workclaim's default Settings, with the attempt history on (the default) or off."""
    from workclaim import Settings

    return Settings(history=history)


class WorkclaimQueue:
    def __init__(self, backend: str, batch: int, history: bool = True) -> None:
        self.name = f"workclaim-{backend}"
        self.backend = backend
        self.batch = batch
        self.history = history
        self.claim_note = f"Queue.claim(limit={batch}) call"
        self.config_note = (
            f"Queue.claim(limit={batch}, lease_seconds=60) then Queue.complete per item; "
            f"{self.history_note()}; defaults otherwise"
            + (" (SQLite WAL, synchronous=FULL)" if backend == "sqlite" else "")
        )

    def history_note(self) -> str:
        return (
            "attempt history on (Settings.history, the default)"
            if self.history
            else ("attempt history off (Settings(history=False))")
        )

    def unavailable(self) -> str | None:
        """Why this row cannot run here (its workclaim backend is not built yet), if so."""
        module = {
            "sqlite": "sqlite",
            "postgres": "postgres",
            "redis": "redis",
            "mariadb": "mariadb",
        }[self.backend]
        try:
            importlib.import_module(f"workclaim.backends.{module}")
        except ImportError as exc:
            return f"workclaim has no {self.backend} backend here ({exc})"
        return None

    def prepare(self, env: dict[str, Any], run_id: str) -> dict[str, Any]:
        from workclaim import Queue

        if self.backend == "sqlite":
            path = _stores.sqlite_path(env, run_id, "workclaim")
            ctx = {"url": f"sqlite:///{path}", "path": str(path)}
        elif self.backend == "postgres":
            schema = _stores.pg_schema(run_id, "wc")
            ctx = {
                "url": _stores.with_query(env["pg_url"], schema=schema, pool_size=2),
                "schema": schema,
            }
        elif self.backend == "mariadb":
            database = _stores.mariadb_database(run_id, "wc")
            _stores.mariadb_create_database(env["mariadb_url"], database)
            ctx = {"url": _stores.mariadb_url(env["mariadb_url"], database), "database": database}
        else:
            prefix = f"peers-wc-{run_id}"
            ctx = {"url": _stores.with_query(env["redis_url"], prefix=prefix), "prefix": prefix}
        ctx["env"] = env
        with Queue(ctx["url"], settings=_settings(self.history)) as q:
            q.migrate()
        return ctx

    def prefill(self, ctx: dict[str, Any], n: int) -> None:
        from workclaim import Queue

        with Queue(ctx["url"], settings=_settings(self.history)) as q:  # items keep the flag
            for lo in range(0, n, PREFILL_CHUNK):
                q.enqueue_many(QUEUE, range(lo, min(n, lo + PREFILL_CHUNK)))

    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None:
        from workclaim import Queue

        worker = f"peers-{os.getpid()}"
        with Queue(ctx["url"], settings=_settings(self.history)) as q:
            q.stats(QUEUE)  # connect (and check the schema) before the clock starts
            start()
            while True:
                leases = rec.timed(
                    q.claim, QUEUE, worker=worker, lease_seconds=60, limit=self.batch
                )
                if not leases:
                    return
                for lease in leases:
                    q.complete(lease)
                    rec.item(lease.payload)

    def cleanup(self, ctx: dict[str, Any]) -> None:
        if self.backend == "sqlite":
            _stores.sqlite_remove(_stores.Path(ctx["path"]))
        elif self.backend == "postgres":
            _stores.pg_drop_schema(ctx["env"]["pg_url"], ctx["schema"])
        elif self.backend == "mariadb":
            _stores.mariadb_drop_database(ctx["env"]["mariadb_url"], ctx["database"])
        else:
            _stores.redis_cleanup(ctx["env"], ctx["prefix"])


def make(backend: str, batch: int, history: bool = True) -> WorkclaimQueue:
    return WorkclaimQueue(backend, batch, history)
