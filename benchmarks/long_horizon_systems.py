"""The three PostgreSQL queues `benchmarks/long_horizon.py` drives, each through its own public API
and worker: workclaim (the worker runtime), PGQueuer (`QueueManager`) and procrastinate
(`run_worker_async`). Each adapter owns a schema of its own, a producer call (`offer`: enqueue a
batch of enqueue timestamps) and a consumer (`consume`: run its worker until `stop` is set,
calling `picked(enqueued_at)` as each handler starts). PGQueuer and procrastinate come from the
peer benchmark's virtualenv (`make peers`); workclaim alone runs in the project's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Protocol

QUEUE = "horizon"
STOP_POLL_SECONDS = 0.2  # how often an async peer's loop looks at the harness's stop event

Picked = Callable[[float], None]


async def serve_until(
    stop: threading.Event,
    serve: Coroutine[Any, Any, Any],
    shut_down: Callable[[asyncio.Task[Any]], None],
) -> None:
    """Run an async peer's worker (`serve`, its main coroutine) until the harness sets `stop`,
    then ask it to shut down (`shut_down(task)`: set its shutdown event, or cancel the task,
    as that peer's docs say) and wait for it to finish. A worker that ends or fails first ends
    the wait at once (its error is raised here)."""
    task = asyncio.ensure_future(serve)
    while not stop.is_set() and not task.done():
        await asyncio.sleep(STOP_POLL_SECONDS)
    if not task.done():
        shut_down(task)
    with contextlib.suppress(asyncio.CancelledError):
        await task


class System(Protocol):
    """One queue under test."""

    name: str

    def prepare(self, url: str, schema: str) -> None:
        """Create the system's tables in `schema` (dropped and recreated)."""

    def producer(self, url: str, schema: str) -> Callable[[list[float]], None]:
        """A callable that enqueues one item per timestamp (in one batch where the API can)."""

    def consume(
        self,
        url: str,
        schema: str,
        concurrency: int,
        job_seconds: float,
        picked: Picked,
        stop: threading.Event,
    ) -> None:
        """Run the system's worker until `stop` is set."""


def _schema_url(url: str, schema: str) -> str:
    from urllib.parse import quote

    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-c search_path={schema}')}"


def reset_schema(url: str, schema: str) -> None:
    """Drop and create `schema` (the run's own)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')


class Workclaim:
    """workclaim's worker runtime on PostgreSQL, as README shows it."""

    name = "workclaim"

    def _url(self, url: str, schema: str) -> str:
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}schema={schema}"

    def prepare(self, url: str, schema: str) -> None:
        from workclaim import Queue, Settings

        reset_schema(url, schema)
        with Queue(self._url(url, schema), settings=Settings.from_env()) as q:
            q.migrate()

    def producer(self, url: str, schema: str) -> Callable[[list[float]], None]:
        from workclaim import Queue, Settings

        q = Queue(self._url(url, schema), settings=Settings.from_env())

        def offer(stamps: list[float]) -> None:
            q.enqueue_many(QUEUE, stamps)

        return offer

    def consume(
        self,
        url: str,
        schema: str,
        concurrency: int,
        job_seconds: float,
        picked: Picked,
        stop: threading.Event,
    ) -> None:
        from workclaim import Queue, Settings
        from workclaim.worker import Context, Worker

        queue = Queue(self._url(url, schema), settings=Settings.from_env())
        worker = Worker(queue, queues=[QUEUE], concurrency=concurrency)

        def handle(ctx: Context) -> None:
            picked(float(ctx.lease.payload))
            time.sleep(job_seconds)

        threading.Thread(target=lambda: (stop.wait(), worker.stop()), daemon=True).start()
        worker.run(handle, install_signals=False)


class PGQueuer:
    """PGQueuer's `QueueManager` on asyncpg, continuous mode, configured as its performance
    guide (docs/guides/performance-tuning.md) says for short jobs: batches of up to 25, a
    `dequeue_timeout` of 10 s (the polling fallback behind NOTIFY), its recommended autovacuum
    settings (`pgq autovac`). Each process runs at most `concurrency` jobs at once through
    `max_concurrent_tasks` (a per-process cap, which must be at least twice the batch, so the
    batch is at most half of it). Not the entrypoint's `concurrency_limit`: that one is enforced
    across the whole fleet in SQL, so it held every process together to one process's share and
    added its capacity gate to every dequeue."""

    name = "pgqueuer"
    max_batch = 25
    dequeue_timeout = timedelta(seconds=10)

    async def _connect(self, url: str, schema: str) -> Any:
        import asyncpg

        return await asyncpg.connect(url, server_settings={"search_path": schema})

    def prepare(self, url: str, schema: str) -> None:
        reset_schema(url, schema)

        async def install() -> None:
            from pgqueuer import AsyncpgDriver, Queries

            conn = await self._connect(url, schema)
            queries = Queries(AsyncpgDriver(conn))
            await queries.install()
            await queries.optimize_autovacuum()  # `pgq autovac`, its guide's checklist
            await conn.close()

        asyncio.run(install())

    def producer(self, url: str, schema: str) -> Callable[[list[float]], None]:
        from pgqueuer import AsyncpgDriver, Queries

        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(self._connect(url, schema))
        queries = Queries(AsyncpgDriver(conn))

        def offer(stamps: list[float]) -> None:
            loop.run_until_complete(
                queries.enqueue(
                    [QUEUE] * len(stamps), [repr(t).encode() for t in stamps], [0] * len(stamps)
                )
            )

        return offer

    def consume(
        self,
        url: str,
        schema: str,
        concurrency: int,
        job_seconds: float,
        picked: Picked,
        stop: threading.Event,
    ) -> None:
        from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

        logging.getLogger("pgqueuer").setLevel(logging.ERROR)

        async def run() -> None:
            conn = await self._connect(url, schema)
            qm = QueueManager(Queries(AsyncpgDriver(conn)))

            @qm.entrypoint(QUEUE)
            async def handle(job: Job) -> None:
                picked(float(job.payload or b"0"))
                await asyncio.sleep(job_seconds)

            batch = max(1, min(self.max_batch, concurrency // 2))
            run = qm.run(
                batch_size=batch,
                dequeue_timeout=self.dequeue_timeout,
                max_concurrent_tasks=max(concurrency, 2 * batch),
            )
            await serve_until(stop, run, lambda task: qm.shutdown.set())

        asyncio.run(run())


class Procrastinate:
    """procrastinate's `run_worker_async` on its psycopg connector, as its docs configure an
    async worker: `concurrency` jobs at once (its knob for async tasks), LISTEN/NOTIFY on (the
    default; polling is only the fallback), a pool of `concurrency` + 2 connections (one per
    running job, the listener, the fetch), its own signal handlers off (the harness stops it, by
    cancelling the task: its documented graceful stop)."""

    name = "procrastinate"

    def _app(self, url: str, schema: str, max_size: int) -> Any:
        import procrastinate

        return procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=_schema_url(url, schema), min_size=1, max_size=max_size
            )
        )

    def prepare(self, url: str, schema: str) -> None:
        reset_schema(url, schema)

        async def install() -> None:
            app = self._app(url, schema, 2)
            async with app.open_async():
                await app.schema_manager.apply_schema_async()

        asyncio.run(install())

    def _task(self, app: Any, picked: Picked | None, job_seconds: float) -> Any:
        @app.task(name=QUEUE, queue=QUEUE)
        async def handle(t: float) -> None:
            if picked is not None:
                picked(t)
                await asyncio.sleep(job_seconds)

        return handle

    def producer(self, url: str, schema: str) -> Callable[[list[float]], None]:
        loop = asyncio.new_event_loop()
        app = self._app(url, schema, 2)
        task = self._task(app, None, 0.0)
        loop.run_until_complete(app.open_async())

        def offer(stamps: list[float]) -> None:
            loop.run_until_complete(task.batch_defer_async(*({"t": t} for t in stamps)))

        return offer

    def consume(
        self,
        url: str,
        schema: str,
        concurrency: int,
        job_seconds: float,
        picked: Picked,
        stop: threading.Event,
    ) -> None:
        logging.getLogger("procrastinate").setLevel(logging.ERROR)

        async def run() -> None:
            app = self._app(url, schema, concurrency + 2)
            self._task(app, picked, job_seconds)
            async with app.open_async():
                run = app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=concurrency,
                    wait=True,
                    install_signal_handlers=False,
                )
                await serve_until(stop, run, lambda task: task.cancel())

        asyncio.run(run())


SYSTEMS: dict[str, type[Any]] = {
    "workclaim": Workclaim,
    "pgqueuer": PGQueuer,
    "procrastinate": Procrastinate,
}
