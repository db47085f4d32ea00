"""How the contract suite reaches a store: directly through `Queue`, or (later) over HTTP.

A transport turns a store URL and settings into an object with the `Queue` API; the contract
suite runs once per (backend, transport) pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from workclaim import Queue, Settings


@contextmanager
def direct(url: str, settings: Settings) -> Iterator[Any]:
    """The library itself: a `Queue` on the store."""
    q = Queue(url, settings=settings)
    try:
        yield q
    finally:
        q.close()


# name -> factory of a context manager yielding an object with the Queue API
TRANSPORTS: dict[str, Callable[[str, Settings], AbstractContextManager[Any]]] = {
    "direct": direct,
}

try:  # the HTTP transport needs the `server` extra
    from tests.support.http_transport import http

    TRANSPORTS["http"] = http
except ImportError:  # pragma: no cover - without fastapi/uvicorn only "direct" runs
    pass
