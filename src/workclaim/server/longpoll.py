"""Long-polls that share one waiting claim: no thundering herd when work arrives.

A store's wake-up signal is process-wide, so if every waiting request ran its own waiting claim,
each enqueue would make every waiter in the process look at its queues again (1,000 waiters: 1,000
claims per enqueue). Instead, waiters asking for the same thing (same queues, worker, lease length
and test clock) join one group; one pump task per group runs `AsyncQueue.claim(wait=...)` for the
group's whole demand and hands the leases out first come, first served. A waiter holds no thread
and no connection; the pump holds none while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from workclaim.errors import WorkclaimError
from workclaim.models import Lease
from workclaim.queue import AsyncQueue

log = logging.getLogger("workclaim.server")

Key = tuple[tuple[str, ...], str, float, datetime | None]
# A pump never waits longer than this before looking at its waiters' deadlines again.
_MAX_ROUND = 30.0


@dataclass(eq=False)
class _Waiter:
    want: int
    deadline: float
    future: asyncio.Future[list[Lease]]


@dataclass
class _Group:
    waiters: list[_Waiter] = field(default_factory=list)
    pump: asyncio.Task[None] | None = None
    idle: bool = False  # its pump was cancelled because its last waiter left


class LongPolls:
    """Waiting claims, grouped so that each group has a single claim in the store at a time."""

    def __init__(self, queue: AsyncQueue, max_batch: int) -> None:
        self.queue = queue
        self.max_batch = max_batch
        self._groups: dict[Key, _Group] = {}
        self._releases: set[asyncio.Task[None]] = set()

    async def claim(
        self,
        names: tuple[str, ...],
        *,
        worker: str,
        lease_seconds: float,
        limit: int,
        wait: float,
        now: datetime | None,
    ) -> list[Lease]:
        """Up to `limit` leases, waiting up to `wait` seconds for work; [] when none came."""
        loop = asyncio.get_running_loop()
        key: Key = (names, worker, lease_seconds, now)
        waiter = _Waiter(limit, loop.time() + wait, loop.create_future())
        group = self._groups.setdefault(key, _Group())
        group.waiters.append(waiter)
        if group.pump is None:
            group.pump = asyncio.create_task(self._pump(key, group))
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), wait)
        except TimeoutError:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()  # handed out just as the wait ended: still ours
            self._leave(group, waiter)
            return []
        except asyncio.CancelledError:
            self._leave(group, waiter, give_back=True)
            raise

    def _leave(self, group: _Group, waiter: _Waiter, *, give_back: bool = False) -> None:
        """A waiter goes away; with `give_back`, leases already handed to it are released."""
        if waiter in group.waiters:
            group.waiters.remove(waiter)
        if not group.waiters and group.pump is not None and not group.idle:
            group.idle = True  # nobody left to claim for: stop now, not at the round's end
            group.pump.cancel()
        future = waiter.future
        if not future.done():
            future.cancel()
        elif give_back and not future.cancelled() and future.exception() is None:
            self.release(future.result())

    def release(self, leases: list[Lease]) -> None:
        """Give leases nobody will work on back to the queue, in the background."""
        for extra in leases:
            task = asyncio.create_task(self._release(extra))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def _release(self, lease: Lease) -> None:
        with contextlib.suppress(WorkclaimError):
            await self.queue.release(lease)

    async def _pump(self, key: Key, group: _Group) -> None:
        names, worker, lease_seconds, now = key
        loop = asyncio.get_running_loop()
        try:
            while True:
                clock = loop.time()
                for gone in [w for w in group.waiters if w.deadline <= clock]:
                    group.waiters.remove(gone)
                    if not gone.future.done():
                        gone.future.set_result([])
                if not group.waiters:
                    return
                wait = min(min(w.deadline for w in group.waiters) - clock, _MAX_ROUND)
                demand = min(sum(w.want for w in group.waiters), self.max_batch)
                leases = await self.queue.claim(
                    names,
                    worker=worker,
                    lease_seconds=lease_seconds,
                    limit=demand,
                    wait=wait,
                    now=now,
                )
                self._hand_out(group, leases)
        except Exception as exc:
            for waiter in group.waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
            group.waiters.clear()
            if not isinstance(exc, WorkclaimError):
                log.error("long-poll pump stopped by %s", type(exc).__name__)
        finally:
            group.pump = None
            if group.idle and group.waiters:  # joined while the idle pump was stopping
                group.pump = asyncio.create_task(self._pump(key, group))
            group.idle = False
            if self._groups.get(key) is group and not group.waiters:
                del self._groups[key]

    def _hand_out(self, group: _Group, leases: list[Lease]) -> None:
        """First come, first served; leases nobody is left to take go back to the queue."""
        rest = list(leases)
        while rest and group.waiters:
            waiter = group.waiters.pop(0)
            if waiter.future.done():
                continue
            waiter.future.set_result(rest[: waiter.want])
            rest = rest[waiter.want :]
        self.release(rest)
