"""How the contract suite reaches a store: directly through `Queue`, or over HTTP.

A transport turns a store URL and settings into a `QueueAPI`; the contract suite runs once per
(backend, transport) pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from tests.support.missing import require
from workclaim import Queue, Settings
from workclaim.api import QueueAPI


@contextmanager
def direct(url: str, settings: Settings) -> Iterator[QueueAPI]:
    """The library itself: a `Queue` on the store."""
    q = Queue(url, settings=settings)
    try:
        yield q
    finally:
        q.close()


@contextmanager
def http(url: str, settings: Settings) -> Iterator[QueueAPI]:
    """The service: `Client` against a live server over the store. It needs the `server` extra;
    without it the test is `unavailable` (a skip locally, a failure under CI=true), never
    silently left out of the suite."""
    served = require("tests.support.http_transport", "the HTTP transport needs the `server` extra")
    with served.http(url, settings) as client:
        yield client


# name -> factory of a context manager yielding the Queue API
TRANSPORTS: dict[str, Callable[[str, Settings], AbstractContextManager[QueueAPI]]] = {
    "direct": direct,
    "http": http,
}
