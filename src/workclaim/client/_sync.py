"""`Client`: the call plans of `_api.py` sent on one `httpx.Client`."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar, cast

import httpx

from workclaim.client import _api
from workclaim.client._wire import Options, Plan, Send

P = ParamSpec("P")
T = TypeVar("T")


def _method(
    plan: Callable[Concatenate[Options, P], Plan[T]],
) -> Callable[Concatenate[Client, P], T]:
    """`plan` as a `Client` method: build the plan with the client's options, run it."""

    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(plan(self._options, *args, **kwargs))

    _api.describe(method, plan, "Client")
    return method


class Client:
    """The `Queue` API over HTTP (sync). One `httpx.Client`, safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_connections: int = 100,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._options = Options(url, token, timeout, retries, backoff)
        self.url = self._options.url
        self._http = httpx.Client(
            base_url=self._options.url,
            headers=self._options.headers,
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )

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
        try:
            step = next(plan)
            while True:
                if isinstance(step, Send):
                    answer: Any
                    try:
                        answer = self._http.request(step.method, step.path, **step.options)
                    except httpx.HTTPError as exc:
                        answer = exc
                    step = plan.send(answer)
                else:
                    time.sleep(step)
                    step = plan.send(None)
        except StopIteration as done:
            return cast(T, done.value)

    migrate = _method(_api.migrate)
    enqueue = _method(_api.enqueue)
    enqueue_many = _method(_api.enqueue_many)
    claim = _method(_api.claim)
    heartbeat = _method(_api.heartbeat)
    complete = _method(_api.complete)
    release = _method(_api.release)
    fail = _method(_api.fail)
    get = _method(_api.get)
    complete_and_claim = _method(_api.complete_and_claim)
    history = _method(_api.history)
    items = _method(_api.items)
    queues = _method(_api.queues)
    stats = _method(_api.stats)
    cancel = _method(_api.cancel)
    requeue = _method(_api.requeue)
    purge = _method(_api.purge)
