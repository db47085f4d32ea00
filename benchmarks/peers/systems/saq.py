"""saq on Redis: one `Worker` per process at saq's default concurrency (10 jobs in flight),
in burst mode (stops once a dequeue finds nothing). The timed claim is saq's own
`Queue.dequeue` (BLMOVE of the job key plus the job fetch)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from systems import _stores
from systems.base import QUEUE, Recorder

CONCURRENCY = 10
DEQUEUE_TIMEOUT = 0.05  # burst mode needs one; it ends each worker that long after the last job
PREFILL_CHUNK = 500
_recorder: Recorder | None = None


async def record(ctx: dict[str, Any], *, n: int) -> None:
    """The no-op job: note which item ran, in this process."""
    if _recorder is not None:
        _recorder.item(n)


class Saq:
    backend = "redis"
    claim_note = "saq Queue.dequeue (BLMOVE + job fetch), called by the worker's 10 tasks"
    config_note = (
        f"Worker(concurrency={CONCURRENCY} (saq's default), burst=True, "
        f"dequeue_timeout={DEQUEUE_TIMEOUT})"
    )

    def prepare(self, env: dict[str, Any], run_id: str) -> dict[str, Any]:
        return {"env": env, "queue": f"{QUEUE}-{run_id}", "url": env["redis_url"]}

    def prefill(self, ctx: dict[str, Any], n: int) -> None:
        from saq import Queue

        async def fill() -> None:
            queue = Queue.from_url(ctx["url"], name=ctx["queue"])
            await queue.connect()
            for lo in range(0, n, PREFILL_CHUNK):
                await asyncio.gather(
                    *(queue.enqueue("record", n=i) for i in range(lo, min(n, lo + PREFILL_CHUNK)))
                )
            await queue.disconnect()

        asyncio.run(fill())

    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None:
        global _recorder
        from saq import Queue, Worker

        _recorder = rec
        logging.getLogger("saq").setLevel(logging.ERROR)

        async def drain() -> None:
            queue = Queue.from_url(ctx["url"], name=ctx["queue"])
            await queue.connect()
            queue.dequeue = rec.wrap_async(queue.dequeue)  # type: ignore[method-assign]
            worker = Worker(
                queue,
                functions=[("record", record)],
                concurrency=CONCURRENCY,
                burst=True,
                dequeue_timeout=DEQUEUE_TIMEOUT,
            )
            start()
            await worker.start()
            await queue.disconnect()

        asyncio.run(drain())

    def cleanup(self, ctx: dict[str, Any]) -> None:
        _stores.redis_cleanup(ctx["env"], f"saq:*{ctx['queue']}")


def make() -> Saq:
    return Saq()
