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
from collections.abc import Callable
from typing import Any, Protocol

QUEUE = "horizon"

Picked = Callable[[float], None]


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
        from workclaim import Queue

        reset_schema(url, schema)
        with Queue(self._url(url, schema)) as q:
            q.migrate()

    def producer(self, url: str, schema: str) -> Callable[[list[float]], None]:
        from workclaim import Queue

        q = Queue(self._url(url, schema))

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
        from workclaim import Queue
        from workclaim.worker import Context, Worker

        worker = Worker(Queue(self._url(url, schema)), queues=[QUEUE], concurrency=concurrency)

        def handle(ctx: Context) -> None:
            picked(float(ctx.lease.payload))
            time.sleep(job_seconds)

        threading.Thread(target=lambda: (stop.wait(), worker.stop()), daemon=True).start()
        worker.run(handle, install_signals=False)


class PGQueuer:
    """PGQueuer's `QueueManager` on asyncpg, continuous mode, batch 25 (its guide's figure for
    short jobs)."""

    name = "pgqueuer"
    batch_size = 25

    async def _connect(self, url: str, schema: str) -> Any:
        import asyncpg

        return await asyncpg.connect(url, server_settings={"search_path": schema})

    def prepare(self, url: str, schema: str) -> None:
        reset_schema(url, schema)

        async def install() -> None:
            from pgqueuer import AsyncpgDriver, Queries

            conn = await self._connect(url, schema)
            await Queries(AsyncpgDriver(conn)).install()
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

            @qm.entrypoint(QUEUE, concurrency_limit=concurrency)
            async def handle(job: Job) -> None:
                picked(float(job.payload or b"0"))
                await asyncio.sleep(job_seconds)

            async def stopper() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.2)
                qm.shutdown.set()

            task = asyncio.create_task(stopper())
            await qm.run(batch_size=self.batch_size)
            await task

        asyncio.run(run())


class Procrastinate:
    """procrastinate's `run_worker_async` on its psycopg connector, LISTEN/NOTIFY on."""

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
                worker = asyncio.create_task(
                    app.run_worker_async(queues=[QUEUE], concurrency=concurrency, wait=True)
                )
                while not stop.is_set():
                    await asyncio.sleep(0.2)
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

        asyncio.run(run())


SYSTEMS: dict[str, type[Any]] = {
    "workclaim": Workclaim,
    "pgqueuer": PGQueuer,
    "procrastinate": Procrastinate,
}
