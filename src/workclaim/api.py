"""The public Queue API, written once: `QueueAPI` (sync) and `AsyncQueueAPI` (asyncio).

`Queue` (a store) and `workclaim.client.Client` (a `workclaim serve` server) satisfy `QueueAPI`;
`AsyncQueue` and `AsyncClient` satisfy `AsyncQueueAPI`. Code that works on either (the worker
runtime, `stats`/`top`, the contract suite) takes these Protocols, so a verb added to one is
added to all. mypy checks each implementation against them; `tests/unit/test_queue_api.py`
checks that parameter names, kinds and defaults match. Each method's contract is the docstring
of the same method on `Queue`.

This module names only the base modules (models), never a backend or the queue itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from workclaim.models import (
    GroupLeases,
    HistoryEvent,
    Item,
    Lease,
    QueuePolicy,
    QueueStats,
    Rate,
    Status,
)


class QueueAPI(Protocol):
    """A work queue (sync): `Queue` on a store, `Client` over HTTP."""

    # -- producing
    def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        dedupe_key: str | None = None,
        group: str | None = None,
        now: datetime | None = None,
    ) -> int: ...

    def enqueue_many(
        self,
        queue: str,
        payloads: Iterable[Any],
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        group: str | None = None,
        now: datetime | None = None,
    ) -> list[int]: ...

    # -- consuming
    def claim(
        self,
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_seconds: float = 30.0,
        limit: int = 1,
        wait: float = 0.0,
        now: datetime | None = None,
    ) -> list[Lease]: ...

    def heartbeat(
        self, lease: Lease, *, extend: float | None = None, now: datetime | None = None
    ) -> Lease: ...

    def complete(
        self, lease: Lease, *, result: Any = None, now: datetime | None = None
    ) -> None: ...

    def release(self, lease: Lease, *, delay: float = 0.0, now: datetime | None = None) -> None: ...

    def fail(
        self,
        lease: Lease,
        error: object,
        *,
        retry: bool = True,
        retry_delay: float | None = None,
        now: datetime | None = None,
    ) -> Status: ...

    def complete_and_claim(
        self,
        done: Iterable[Lease | tuple[Lease, Any]],
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_seconds: float = 30.0,
        limit: int = 1,
        now: datetime | None = None,
    ) -> tuple[list[Lease], list[Lease]]: ...

    # -- inspection and housekeeping
    def get(self, item_id: int) -> Item: ...

    def history(
        self, item_id: int, *, limit: int = 1_000, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent]: ...

    def items(
        self,
        queue: str,
        status: Status | str = Status.QUEUED,
        *,
        limit: int = 100,
        after: int | None = None,
    ) -> list[Item]: ...

    def queues(self) -> list[str]: ...

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats: ...

    def cancel(self, item_id: int, *, now: datetime | None = None) -> None: ...

    def requeue(
        self, item_id: int, *, max_attempts: int | None = None, now: datetime | None = None
    ) -> None: ...

    def purge(self, queue: str, *, older_than: float, now: datetime | None = None) -> int: ...

    # -- flow control
    def set_policy(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        group_concurrency: int | None = None,
        rate: Rate | tuple[int, float] | None = None,
        group_rate: Rate | tuple[int, float] | None = None,
    ) -> QueuePolicy: ...

    def policy(self, queue: str) -> QueuePolicy: ...

    def pause(self, queue: str) -> QueuePolicy: ...

    def resume(self, queue: str) -> QueuePolicy: ...

    def live_leases_by_group(
        self, queue: str, *, limit: int = 10, now: datetime | None = None
    ) -> list[GroupLeases]: ...

    # -- lifecycle
    def migrate(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class AsyncQueueAPI(Protocol):
    """`QueueAPI` for asyncio: `AsyncQueue` on a store, `AsyncClient` over HTTP."""

    # -- producing
    async def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        dedupe_key: str | None = None,
        group: str | None = None,
        now: datetime | None = None,
    ) -> int: ...

    async def enqueue_many(
        self,
        queue: str,
        payloads: Iterable[Any],
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        group: str | None = None,
        now: datetime | None = None,
    ) -> list[int]: ...

    # -- consuming
    async def claim(
        self,
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_seconds: float = 30.0,
        limit: int = 1,
        wait: float = 0.0,
        now: datetime | None = None,
    ) -> list[Lease]: ...

    async def heartbeat(
        self, lease: Lease, *, extend: float | None = None, now: datetime | None = None
    ) -> Lease: ...

    async def complete(
        self, lease: Lease, *, result: Any = None, now: datetime | None = None
    ) -> None: ...

    async def release(
        self, lease: Lease, *, delay: float = 0.0, now: datetime | None = None
    ) -> None: ...

    async def fail(
        self,
        lease: Lease,
        error: object,
        *,
        retry: bool = True,
        retry_delay: float | None = None,
        now: datetime | None = None,
    ) -> Status: ...

    async def complete_and_claim(
        self,
        done: Iterable[Lease | tuple[Lease, Any]],
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_seconds: float = 30.0,
        limit: int = 1,
        now: datetime | None = None,
    ) -> tuple[list[Lease], list[Lease]]: ...

    # -- inspection and housekeeping
    async def get(self, item_id: int) -> Item: ...

    async def history(
        self, item_id: int, *, limit: int = 1_000, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent]: ...

    async def items(
        self,
        queue: str,
        status: Status | str = Status.QUEUED,
        *,
        limit: int = 100,
        after: int | None = None,
    ) -> list[Item]: ...

    async def queues(self) -> list[str]: ...

    async def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats: ...

    async def cancel(self, item_id: int, *, now: datetime | None = None) -> None: ...

    async def requeue(
        self, item_id: int, *, max_attempts: int | None = None, now: datetime | None = None
    ) -> None: ...

    async def purge(self, queue: str, *, older_than: float, now: datetime | None = None) -> int: ...

    # -- flow control
    async def set_policy(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        group_concurrency: int | None = None,
        rate: Rate | tuple[int, float] | None = None,
        group_rate: Rate | tuple[int, float] | None = None,
    ) -> QueuePolicy: ...

    async def policy(self, queue: str) -> QueuePolicy: ...

    async def pause(self, queue: str) -> QueuePolicy: ...

    async def resume(self, queue: str) -> QueuePolicy: ...

    async def live_leases_by_group(
        self, queue: str, *, limit: int = 10, now: datetime | None = None
    ) -> list[GroupLeases]: ...

    # -- lifecycle
    async def migrate(self) -> None: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
