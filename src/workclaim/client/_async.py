"""`AsyncClient`: the call plans of `_api.py` sent on one `httpx.AsyncClient`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar, cast

import httpx

from workclaim.client._api import Methods
from workclaim.client._connection import Connection
from workclaim.client._wire import Answer, Options, Plan, Send

P = ParamSpec("P")
T = TypeVar("T")


def _method(
    plan: Callable[Concatenate[Options, P], Plan[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    """`plan` as an `AsyncClient` method: build the plan with the client's options, run it."""

    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(plan(self._options, *args, **kwargs))

    return method


class AsyncClient(Connection[httpx.AsyncBaseTransport, httpx.AsyncClient], Methods, bind=_method):
    """The `AsyncQueue` API over HTTP, on `httpx.AsyncClient`."""

    _pool = httpx.AsyncClient

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self, plan: Plan[T]) -> T:
        """Run a call plan: send each request it yields, sleep each pause, return its result."""
        answer: Answer = None
        try:
            while True:
                step = plan.send(answer)
                if isinstance(step, Send):
                    try:
                        answer = await self._http.request(step.method, step.path, **step.options)
                    except httpx.HTTPError as exc:
                        answer = exc
                else:
                    await asyncio.sleep(step)
                    answer = None
        except StopIteration as done:
            return cast(T, done.value)
