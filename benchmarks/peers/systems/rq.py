"""RQ on Redis: one `SimpleWorker` per process in burst mode (drains, then exits). RQ's own
performance notes recommend SimpleWorker (no fork per job) for very short jobs. The timed claim
is the worker's `dequeue_job_and_maintain_ttl` (LPOP of the job id plus fetching the job hash);
RQ then moves the job through its started/finished registries around the call."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from systems import _stores
from systems.base import QUEUE, Recorder

PREFILL_CHUNK = 1_000
_recorder: Recorder | None = None


def record(number: int) -> None:
    """The no-op job: note which item ran, in this process."""
    if _recorder is not None:
        _recorder.item(number)


class RQ:
    backend = "redis"
    claim_note = "SimpleWorker.dequeue_job_and_maintain_ttl (pop + job fetch)"
    config_note = (
        "SimpleWorker (no fork per job, per RQ's performance notes), work(burst=True), "
        "defaults otherwise (result_ttl 500 s)"
    )

    def prepare(self, env: dict[str, Any], run_id: str) -> dict[str, Any]:
        return {"env": env, "queue": f"{QUEUE}-{run_id}", "url": env["redis_url"]}

    def prefill(self, ctx: dict[str, Any], n: int) -> None:
        from redis import Redis
        from rq import Queue

        conn = Redis.from_url(ctx["url"])
        queue = Queue(ctx["queue"], connection=conn)
        for lo in range(0, n, PREFILL_CHUNK):
            jobs = [
                Queue.prepare_data(record, args=(i,)) for i in range(lo, min(n, lo + PREFILL_CHUNK))
            ]
            queue.enqueue_many(jobs)
        conn.close()

    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None:
        global _recorder
        from redis import Redis
        from rq import Queue, SimpleWorker

        _recorder = rec
        logging.getLogger("rq.worker").setLevel(logging.ERROR)
        conn = Redis.from_url(ctx["url"])
        conn.ping()
        worker = SimpleWorker([Queue(ctx["queue"], connection=conn)], connection=conn)
        worker.dequeue_job_and_maintain_ttl = rec.wrap(  # type: ignore[method-assign]
            worker.dequeue_job_and_maintain_ttl
        )
        start()
        worker.work(burst=True, logging_level="ERROR", with_scheduler=False)
        conn.close()

    def cleanup(self, ctx: dict[str, Any]) -> None:
        _stores.redis_cleanup(ctx["env"], f"rq:*{ctx['queue']}")


def make() -> RQ:
    return RQ()
