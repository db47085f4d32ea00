"""`Client`: the call plans of `_api.py` sent on one `httpx.Client`."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Concatenate, ParamSpec, Self, TypeVar, cast

import httpx

from workclaim.client._api import Methods
from workclaim.client._connection import Connection
from workclaim.client._wire import Answer, Options, Plan, Send

P = ParamSpec("P")
T = TypeVar("T")


def _method(
    plan: Callable[Concatenate[Options, P], Plan[T]],
) -> Callable[Concatenate[Client, P], T]:
    """`plan` as a `Client` method: build the plan with the client's options, run it."""

    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(plan(self._options, *args, **kwargs))

    return method


class Client(Connection[httpx.BaseTransport, httpx.Client], Methods, bind=_method):
    """The `Queue` API over HTTP (sync). One `httpx.Client`, safe to share between threads."""

    _pool = httpx.Client

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, plan: Plan[T]) -> T:
        """Run a call plan: send each request it yields, sleep each pause, return its result."""
        answer: Answer = None
        try:
            while True:
                step = plan.send(answer)
                if isinstance(step, Send):
                    try:
                        answer = self._http.request(step.method, step.path, **step.options)
                    except httpx.HTTPError as exc:
                        answer = exc
                else:
                    time.sleep(step)
                    answer = None
        except StopIteration as done:
            return cast(T, done.value)
