"""procrastinate on PostgreSQL: one worker per process (`run_worker_async(wait=False)`: it stops
once a fetch finds no job), concurrency 10 so completions overlap the next fetch. The timed
claim is its own `JobManager.fetch_job` (the `procrastinate_fetch_job` SQL function, one job
per call)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from systems import _stores
from systems.base import QUEUE, Recorder

CONCURRENCY = 10
PREFILL_CHUNK = 2_000
_recorder: Recorder | None = None


def _app(ctx: dict[str, Any], max_size: int) -> Any:
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=_stores.pg_libpq_search_path(ctx["url"], ctx["schema"]),
            min_size=1,
            max_size=max_size,
        )
    )

    @app.task(name=QUEUE, queue=QUEUE)
    async def record(n: int) -> None:
        if _recorder is not None:
            _recorder.item(n)

    return app


class Procrastinate:
    backend = "postgres"
    claim_note = "JobManager.fetch_job (procrastinate_fetch_job, one job per call)"
    config_note = (
        f"PsycopgConnector (pool max {CONCURRENCY + 2}), run_worker_async(concurrency="
        f"{CONCURRENCY}, wait=False, listen_notify=True); succeeded jobs kept (default)"
    )

    def prepare(self, env: dict[str, Any], run_id: str) -> dict[str, Any]:
        schema = _stores.pg_schema(run_id, "pro")
        _stores.pg_create_schema(env["pg_url"], schema)
        ctx = {"url": env["pg_url"], "schema": schema}

        async def install() -> None:
            app = _app(ctx, 2)
            async with app.open_async():
                await app.schema_manager.apply_schema_async()

        asyncio.run(install())
        return ctx

    def prefill(self, ctx: dict[str, Any], n: int) -> None:
        async def fill() -> None:
            app = _app(ctx, 2)
            async with app.open_async():
                task = app.tasks[QUEUE]
                for lo in range(0, n, PREFILL_CHUNK):
                    await task.batch_defer_async(
                        *({"n": i} for i in range(lo, min(n, lo + PREFILL_CHUNK)))
                    )

        asyncio.run(fill())

    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None:
        global _recorder
        _recorder = rec
        logging.getLogger("procrastinate").setLevel(logging.ERROR)

        async def drain() -> None:
            app = _app(ctx, CONCURRENCY + 2)
            async with app.open_async():
                await app.check_connection_async()
                app.job_manager.fetch_job = rec.wrap_async(app.job_manager.fetch_job)  # type: ignore[method-assign]
                start()
                await app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=CONCURRENCY,
                    wait=False,
                    install_signal_handlers=False,
                )

        asyncio.run(drain())

    def cleanup(self, ctx: dict[str, Any]) -> None:
        _stores.pg_drop_schema(ctx["url"], ctx["schema"])


def make() -> Procrastinate:
    return Procrastinate()
