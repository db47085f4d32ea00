"""A handle on an enqueued task: its id, its status, and its result once a worker finished it.

`result(timeout=)` waits without a tight loop: it reads the item, and while it is not finished
waits on the store's wake-up signal (`Wakeup`, the one `claim(wait=)` uses) for at most a pause
that grows from 50 ms to 1 s. The stores signal new and retried work, not every completion, so
the pause bounds how late a result is seen; over HTTP (no signal) the pauses alone pace it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Generic, TypeVar

from workclaim.api import AsyncQueueAPI, QueueAPI
from workclaim.backends.wakeup import Wakeup
from workclaim.errors import WorkclaimError
from workclaim.models import Item, Status

R = TypeVar("R")

FIRST_PAUSE = 0.05
LONGEST_PAUSE = 1.0


class TaskFailed(WorkclaimError):
    """The task's item ended without a result: `dead` (its last error is `error`) or
    `cancelled`."""

    def __init__(self, item_id: int, status: Status, error: str | None) -> None:
        first = (error or "").partition("\n")[0] or status.value
        super().__init__(f"task item {item_id} is {status.value}: {first}")
        self.item_id = item_id
        self.status = status
        self.error = error


def outcome(item: Item) -> tuple[bool, Any]:
    """(finished, result) for an item; raises `TaskFailed` for a dead or cancelled one."""
    if item.status is Status.DONE:
        return True, item.result
    if item.status in (Status.DEAD, Status.CANCELLED):
        raise TaskFailed(item.id, item.status, item.last_error)
    return False, None


def _wakeup(source: object) -> Wakeup | None:
    """The store's wake-up signal behind a Queue or AsyncQueue (None over HTTP)."""
    backend = getattr(getattr(source, "sync", source), "backend", None)
    wakeup = getattr(backend, "wakeup", None)
    return wakeup() if callable(wakeup) else None


class _Pace:
    """The pauses between two reads of a waited-for item: 50 ms doubling to 1 s, never past
    the deadline; `next()` raises `TimeoutError` once the deadline has passed."""

    def __init__(self, item_id: int, timeout: float | None) -> None:
        self.item_id = item_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.pause = FIRST_PAUSE

    def next(self) -> float:
        pause, self.pause = self.pause, min(LONGEST_PAUSE, self.pause * 2)
        if self.deadline is None:
            return pause
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"task item {self.item_id} did not finish within {self.timeout:g} s")
        return min(pause, left)


class Handle(Generic[R]):
    """An enqueued task's item, on a sync source (`Queue` or `Client`)."""

    def __init__(self, source: QueueAPI, item_id: int) -> None:
        self.source = source
        self.id = item_id

    def __repr__(self) -> str:
        return f"<Handle item {self.id}>"

    def status(self) -> Status:
        """The item's status now."""
        return self.source.get(self.id).status

    def result(self, timeout: float | None = None) -> R:
        """The task's return value once a worker completed it; `TaskFailed` if the item is dead
        or cancelled, `TimeoutError` if it is not finished within `timeout` seconds (None:
        wait as long as it takes)."""
        pace, wakeup = _Pace(self.id, timeout), _wakeup(self.source)
        while True:
            generation = wakeup.generation() if wakeup is not None else 0
            finished, value = outcome(self.source.get(self.id))
            if finished:
                return value  # type: ignore[no-any-return]
            wait = pace.next()
            if wakeup is not None:
                wakeup.wait(generation, wait)
            else:
                time.sleep(wait)


class AsyncHandle(Generic[R]):
    """An enqueued task's item, on an async source (`AsyncQueue` or `AsyncClient`)."""

    def __init__(self, source: AsyncQueueAPI, item_id: int) -> None:
        self.source = source
        self.id = item_id

    def __repr__(self) -> str:
        return f"<AsyncHandle item {self.id}>"

    async def status(self) -> Status:
        """The item's status now."""
        return (await self.source.get(self.id)).status

    async def result(self, timeout: float | None = None) -> R:
        """See `Handle.result`; waits holding no thread."""
        pace, wakeup = _Pace(self.id, timeout), _wakeup(self.source)
        while True:
            generation = wakeup.generation() if wakeup is not None else 0
            finished, value = outcome(await self.source.get(self.id))
            if finished:
                return value  # type: ignore[no-any-return]
            wait = pace.next()
            if wakeup is not None:
                await wakeup.wait_async(generation, wait)
            else:
                await asyncio.sleep(wait)
