"""PGQueuer on PostgreSQL: one `QueueManager` per process on an asyncpg connection (the driver
its docs measure fastest), `run(mode=drain)` so it exits once the queue is empty. Batch size
25: its performance guide says to raise the default 10 for short jobs (and shows 25). The
timed claim is its own `Queries.dequeue` (one batched `FOR UPDATE SKIP LOCKED` statement);
completions are buffered and logged in batches by PGQueuer itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from systems import _stores
from systems.base import QUEUE, Recorder

BATCH_SIZE = 25
PREFILL_CHUNK = 5_000


async def _connect(ctx: dict[str, Any]) -> Any:
    import asyncpg

    return await asyncpg.connect(ctx["url"], server_settings={"search_path": ctx["schema"]})


class PGQueuer:
    backend = "postgres"
    claim_note = f"Queries.dequeue(batch_size={BATCH_SIZE}) (one batched SKIP LOCKED statement)"
    config_note = (
        f"QueueManager on AsyncpgDriver, run(batch_size={BATCH_SIZE}, mode=drain), durability "
        "'durable' (default: all tables logged); completions buffered by PGQueuer"
    )

    def prepare(self, env: dict[str, Any], run_id: str) -> dict[str, Any]:
        schema = _stores.pg_schema(run_id, "pgq")
        _stores.pg_create_schema(env["pg_url"], schema)
        ctx = {"url": env["pg_url"], "schema": schema}

        async def install() -> None:
            from pgqueuer import AsyncpgDriver, Queries

            conn = await _connect(ctx)
            await Queries(AsyncpgDriver(conn)).install()
            await conn.close()

        asyncio.run(install())
        return ctx

    def prefill(self, ctx: dict[str, Any], n: int) -> None:
        async def fill() -> None:
            from pgqueuer import AsyncpgDriver, Queries

            conn = await _connect(ctx)
            queries = Queries(AsyncpgDriver(conn))
            for lo in range(0, n, PREFILL_CHUNK):
                numbers = range(lo, min(n, lo + PREFILL_CHUNK))
                await queries.enqueue(
                    [QUEUE] * len(numbers),
                    [str(i).encode() for i in numbers],
                    [0] * len(numbers),
                )
            await conn.close()

        asyncio.run(fill())

    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None:
        from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
        from pgqueuer.types import QueueExecutionMode

        logging.getLogger("pgqueuer").setLevel(logging.ERROR)

        async def drain() -> None:
            conn = await _connect(ctx)
            qm = QueueManager(Queries(AsyncpgDriver(conn)))
            qm.queries.dequeue = rec.wrap_async(qm.queries.dequeue)  # type: ignore[method-assign]

            @qm.entrypoint(QUEUE)
            async def record(job: Job) -> None:
                rec.item(int(job.payload or b"-1"))

            start()
            await qm.run(
                batch_size=BATCH_SIZE,
                mode=QueueExecutionMode.drain,
                dequeue_timeout=timedelta(seconds=1),
            )
            if not conn.is_closed():
                await conn.close()

        asyncio.run(drain())

    def cleanup(self, ctx: dict[str, Any]) -> None:
        _stores.pg_drop_schema(ctx["url"], ctx["schema"])


def make() -> PGQueuer:
    return PGQueuer()
