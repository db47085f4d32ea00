"""What `Client` and `AsyncClient` both hold: the checked options and one httpx pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import httpx

from workclaim.client._wire import Options

TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)
PoolT = TypeVar("PoolT", httpx.Client, httpx.AsyncClient)


class Connection(Generic[TransportT, PoolT]):
    """A client of one server: `url`, the options every call uses, and the connection pool.

    `token` is the bearer token; `timeout` bounds each request (a claim's wait is added to it);
    `retries` and `backoff` say how often and after how long a call that may be repeated is sent
    again; `transport` replaces httpx's own (tests, proxies)."""

    _pool: Callable[..., PoolT]  # httpx.Client or httpx.AsyncClient

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_connections: int = 100,
        transport: TransportT | None = None,
    ) -> None:
        self._options = Options(url, token, timeout, retries, backoff)
        self.url = self._options.url
        self._http: PoolT = self._pool(
            base_url=self._options.url,
            headers=self._options.headers,
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )
