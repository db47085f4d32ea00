"""The task API end to end: enqueue, a worker runs the task, the handle reads the result; and
how a task or handler steers failures (Permanent, RetryAfter, timeout, non-JSON results), on
every backend, directly and over HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_worker_runtime import running
from tests.support.transports import TRANSPORTS
from workclaim import (
    AsyncQueue,
    Backoff,
    EventKind,
    Item,
    Queue,
    Settings,
    Status,
    ValidationError,
)
from workclaim.api import QueueAPI
from workclaim.tasks import Handle, Registry, TaskFailed, TaskHandler, connect, encode_call, task
from workclaim.worker import Context, Permanent, RetryAfter, Worker

REG = Registry()
QUEUE = "tq"
NO_WAIT = Backoff(base=0.0, factor=1.0, cap=0.0, jitter=0.0)  # retries due at once
seen_stopping = threading.Event()  # set by `stuck` once the runtime told it to stop


@task(queue=QUEUE, registry=REG)
def add(a: int, b: int) -> int:
    return a + b


@task(queue=QUEUE, registry=REG, name="mul")
async def mul(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a * b


@task(queue=QUEUE, registry=REG)
def attempt_of(ctx: Context) -> int:
    return ctx.attempt


@task(queue=QUEUE, registry=REG)
def not_json() -> object:
    return {1, 2}


@task(queue=QUEUE, registry=REG)
def hopeless(why: str) -> None:
    raise Permanent(why)


@task(queue=QUEUE, registry=REG, max_attempts=2)
def later(seconds: float) -> None:
    raise RetryAfter(seconds, "come back later")


@task(queue=QUEUE, registry=REG, max_attempts=1, timeout=0.2)
def stuck(ctx: Context) -> None:
    ctx.stopping.wait(60)  # a well-behaved handler: it stops when told
    if ctx.stopping.is_set() and ctx.lost.is_set():
        seen_stopping.set()


@task(queue=QUEUE, registry=REG, max_attempts=1, timeout=0.2)
async def stuck_async() -> None:
    await asyncio.sleep(60)


@pytest.fixture(params=sorted(TRANSPORTS))
def source(request: pytest.FixtureRequest, store_url: str, settings: Settings) -> Iterator[Any]:
    """A Queue on the store, or a Client over a live server on it."""
    with TRANSPORTS[request.param](store_url, settings) as api:
        yield api


def worker_on(src: QueueAPI, **options: Any) -> Worker:
    """A worker running this module's tasks."""
    worker = Worker(src, queues=[QUEUE], concurrency=2, wait=0.5, **options)
    worker.handler(TaskHandler(REG))
    return worker


def _wait_for(src: QueueAPI, item_id: int, done: Callable[[Item], bool]) -> Item:
    """The item once `done(item)` holds (read every 50 ms; a minute at most)."""
    for _ in range(1_200):
        item = src.get(item_id)
        if done(item):
            return item
        time.sleep(0.05)
    raise AssertionError(f"item {item_id} never got there: {src.get(item_id)}")


def _failed_at(src: QueueAPI, item_id: int) -> datetime:
    """When the item's last failure was recorded (store clock)."""
    return [e.at for e in src.history(item_id) if e.kind is EventKind.FAILED][-1]


def test_enqueue_run_and_read_results(source: QueueAPI) -> None:
    handles: list[Handle[Any]] = [
        add.enqueue_on(source, 2, 3),
        add.options(priority=5).enqueue_on(source, a=1, b=1),
        mul.enqueue_on(source, 6, 7),
        attempt_of.enqueue_on(source),
    ]
    with running(worker_on(source)):
        results = [h.result(timeout=60) for h in handles]
    assert results == [5, 2, 42, 1]
    assert handles[0].status() is Status.DONE
    assert source.get(handles[1].id).priority == 5
    assert source.get(handles[0].id).payload == encode_call(f"{__name__}.add", [2, 3], {})


def test_unknown_task_goes_dead_after_its_attempts(source: QueueAPI) -> None:
    item_id = source.enqueue(QUEUE, encode_call("nowhere.task", [], {}), max_attempts=2)
    with running(worker_on(source, backoff=NO_WAIT)), pytest.raises(TaskFailed) as failed:
        Handle(source, item_id).result(timeout=60)
    assert failed.value.status is Status.DEAD
    assert source.get(item_id).attempts == 2
    assert "no task named 'nowhere.task' is registered in this worker; registered: " in str(
        failed.value.error
    )
    assert f"{__name__}.add" in str(failed.value.error)


def test_a_payload_that_is_not_a_task_call_is_dead_at_once(source: QueueAPI) -> None:
    item_id = source.enqueue(QUEUE, {"to": "a@example.org"}, max_attempts=5)
    with running(worker_on(source)), pytest.raises(TaskFailed) as failed:
        Handle(source, item_id).result(timeout=60)
    assert source.get(item_id).attempts == 1
    assert "is not a task call" in str(failed.value.error)


def test_non_json_arguments_are_refused_and_nothing_is_written(source: QueueAPI) -> None:
    with pytest.raises(ValidationError, match=r"argument args\[1\] is not JSON"):
        add.enqueue_on(source, 1, {1, 2})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="missing a required argument"):
        add.enqueue_on(source, 1)  # type: ignore[call-arg]
    assert source.items(queue=QUEUE) == []


def test_a_non_json_result_is_dead_at_once_not_retried(source: QueueAPI) -> None:
    handle = not_json.enqueue_on(source)
    with running(worker_on(source)), pytest.raises(TaskFailed) as failed:
        handle.result(timeout=60)
    item = source.get(handle.id)
    assert (item.status, item.attempts, item.max_attempts) == (Status.DEAD, 1, 5)
    assert "result was refused" in str(failed.value.error)


def test_permanent_is_dead_at_once(source: QueueAPI) -> None:
    handle = hopeless.enqueue_on(source, "the address is malformed")
    with running(worker_on(source)), pytest.raises(TaskFailed) as failed:
        handle.result(timeout=60)
    assert source.get(handle.id).attempts == 1
    assert str(failed.value.error).startswith("Permanent: the address is malformed")


def test_retry_after_waits_exactly_that_long(source: QueueAPI) -> None:
    handle = later.enqueue_on(source, 3_600)
    with running(worker_on(source)):
        item = _wait_for(source, handle.id, lambda i: i.attempts == 1 and i.status is Status.QUEUED)
    assert item.run_at - _failed_at(source, handle.id) == timedelta(
        seconds=3_600
    )  # not the 10 s backoff
    assert (item.last_error or "").startswith("RetryAfter: come back later")


def test_retry_after_is_bounded_by_max_attempts(source: QueueAPI) -> None:
    handle = later.enqueue_on(source, 0)
    with running(worker_on(source)), pytest.raises(TaskFailed):
        handle.result(timeout=60)
    assert source.get(handle.id).attempts == 2  # the task's max_attempts


@pytest.mark.parametrize("fn", [stuck, stuck_async], ids=["sync", "async"])
def test_a_timeout_fails_the_run(source: QueueAPI, fn: Any) -> None:
    seen_stopping.clear()
    handle = fn.enqueue_on(source)
    with running(worker_on(source)), pytest.raises(TaskFailed) as failed:
        handle.result(timeout=60)
    assert str(failed.value.error).startswith(
        "HandlerTimeout: the handler ran past its timeout of 0.2 s"
    )
    if fn is stuck:  # the thread ran on and saw both events set
        assert seen_stopping.wait(30)


def test_plain_handlers_steer_too(source: QueueAPI) -> None:
    dead = source.enqueue("plain", {"do": "permanent"})
    retried = source.enqueue("plain", {"do": "retry"})

    def handler(ctx: Context) -> None:
        if ctx.lease.payload["do"] == "permanent":
            raise Permanent("no")
        raise RetryAfter(600)

    worker = Worker(source, queues=["plain"], wait=0.5)
    worker.handler(handler)
    with running(worker):
        _wait_for(source, dead, lambda i: i.status is Status.DEAD)
        item = _wait_for(source, retried, lambda i: i.attempts == 1 and i.last_error is not None)
    assert item.status is Status.QUEUED
    assert item.run_at - _failed_at(source, retried) == timedelta(seconds=600)


def test_aenqueue_on_an_async_queue(store_url: str, settings: Settings) -> None:
    async def main() -> int:
        async with AsyncQueue(store_url, settings=settings) as aq:
            connect(aq)
            try:
                handle = await add.aenqueue(20, 22)
                assert await handle.status() is Status.QUEUED
                with Queue(store_url, settings=settings) as q, running(worker_on(q)):
                    return await handle.result(timeout=60)
            finally:
                connect(None)

    assert asyncio.run(main()) == 42


def test_enqueue_many_and_the_connected_source(store_url: str, settings: Settings) -> None:
    with Queue(store_url, settings=settings) as q:
        connect(q)
        try:
            handles = add.enqueue_many([(1, 2), {"a": 3, "b": 4}])
            single = add.enqueue(5, 6)
        finally:
            connect(None)
        with running(worker_on(q)):
            assert [h.result(timeout=60) for h in [*handles, single]] == [3, 7, 11]


def test_a_plain_handler_has_the_workers_timeout(source: QueueAPI) -> None:
    item_id = source.enqueue("plain", {}, max_attempts=1)
    stopped = threading.Event()

    def handler(ctx: Context) -> None:
        if ctx.stopping.wait(60):
            stopped.set()

    worker = Worker(source, queues=["plain"], wait=0.5, timeout=0.2)
    worker.handler(handler)
    with running(worker):
        item = _wait_for(source, item_id, lambda i: i.status is Status.DEAD)
        assert stopped.wait(30)
    assert (item.last_error or "").startswith("HandlerTimeout: the handler ran past its timeout")
