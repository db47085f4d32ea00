"""Which calls `Client` and `AsyncClient` send again when an answer is lost.

A real server (uvicorn over a SQLite file) commits each call; a transport in front of the
client's own throws the first answer away (as when a connection drops after the server
committed) and runs a step in between, as another worker could before the client retries. A
call may be repeated only if the repeat changes nothing the first try did.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.http_transport import running_server, server_config
from workclaim import BackendUnavailable, Queue, Settings, Status
from workclaim.client import AsyncClient, Client
from workclaim.server import create_app

Between = Callable[[], None]


def _lost_answer(request: httpx.Request) -> httpx.RemoteProtocolError:
    """The error httpx raises when the connection drops before the answer arrives."""
    return httpx.RemoteProtocolError(
        "Server disconnected without sending a response", request=request
    )


class DropFirstAnswer(httpx.BaseTransport):
    """Sends every request to the server; the first answer to `path` is read and dropped, and
    `between()` runs before the client sees the error."""

    def __init__(self, path: str, between: Between) -> None:
        self.inner = httpx.HTTPTransport()
        self.path, self.between = path, between
        self.sent: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.sent[request.url.path] += 1
        if request.url.path != self.path or self.sent[self.path] > 1:
            return response
        response.read()  # the server committed and answered
        response.close()
        self.between()
        raise _lost_answer(request)

    def close(self) -> None:
        self.inner.close()


class AsyncDropFirstAnswer(httpx.AsyncBaseTransport):
    """`DropFirstAnswer` for `AsyncClient`."""

    def __init__(self, path: str, between: Between) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.path, self.between = path, between
        self.sent: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.sent[request.url.path] += 1
        if request.url.path != self.path or self.sent[self.path] > 1:
            return response
        await response.aread()
        await response.aclose()
        await asyncio.to_thread(self.between)
        raise _lost_answer(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(store URL, server base URL): a live server over a SQLite file."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with running_server(create_app(url, server_config(Settings()))) as base:
        yield url, base


def _call(
    kind: str, base: str, path: str, between: Between, method: str, *args: Any, **kwargs: Any
) -> Any:
    """Run one client call through a transport that drops its first answer; returns
    (outcome, requests sent to `path`)."""
    outcome: Any
    if kind == "sync":
        transport = DropFirstAnswer(path, between)
        with Client(base, retries=3, backoff=0.01, transport=transport) as client:
            try:
                outcome = getattr(client, method)(*args, **kwargs)
            except BackendUnavailable as exc:
                outcome = exc
        return outcome, transport.sent[path]

    async def run() -> Any:
        transport = AsyncDropFirstAnswer(path, between)
        async with AsyncClient(base, retries=3, backoff=0.01, transport=transport) as client:
            try:
                result = await getattr(client, method)(*args, **kwargs)
            except BackendUnavailable as exc:
                result = exc
        return result, transport.sent[path]

    return asyncio.run(run())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_enqueue_with_a_dedupe_key_is_not_repeated_after_a_lost_answer(
    served: tuple[str, str], kind: str
) -> None:
    url, base = served
    with Queue(url) as q:

        def finish_it() -> None:  # another worker runs the item before the client retries
            [lease] = q.claim("jobs", worker="other")
            q.complete(lease)

        outcome, sent = _call(
            kind, base, "/queues/jobs/items", finish_it, "enqueue", "jobs", 1, dedupe_key="k"
        )
        items = [*q.items("jobs", Status.QUEUED), *q.items("jobs", Status.DONE)]
    # The retry found the key free again and made a second item, which would then run twice.
    assert len(items) == 1, f"a retried enqueue created {len(items)} items"
    assert sent == 1
    assert isinstance(outcome, BackendUnavailable)  # indeterminate: it may have happened


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("enqueue_many", "/queues/jobs/items"),
        ("cancel", "/items/{id}"),
        ("requeue", "/items/{id}/requeue"),
        ("purge", "/queues/jobs/purge"),
        ("claim", "/worker/claim"),
        ("complete_and_claim", "/worker/complete-and-claim"),
    ],
)
def test_calls_that_could_act_twice_are_not_repeated_after_a_lost_answer(
    served: tuple[str, str], method: str, path: str
) -> None:
    url, base = served
    with Queue(url) as q:
        item_id = q.enqueue("jobs", 1)
        if method == "requeue":
            [lease] = q.claim("jobs", worker="w")
            q.fail(lease, "x", retry=False)
        args: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
            "enqueue_many": (("jobs", [1, 2]), {}),
            "cancel": ((item_id,), {}),
            "requeue": ((item_id,), {}),
            "purge": (("jobs",), {"older_than": 0.0}),
            "claim": (("jobs",), {}),
            "complete_and_claim": (([], "jobs"), {}),
        }
        positional, named = args[method]
        outcome, sent = _call(
            "sync", base, path.format(id=item_id), lambda: None, method, *positional, **named
        )
    assert sent == 1
    assert isinstance(outcome, BackendUnavailable)


@pytest.mark.timeout(60)
def test_a_complete_whose_answer_was_lost_is_repeated_and_returns_its_outcome(
    served: tuple[str, str],
) -> None:
    url, base = served
    with Queue(url) as q:
        item_id = q.enqueue("jobs", 1)
        [lease] = q.claim("jobs", worker="w")
        outcome, sent = _call("sync", base, "/worker/complete", lambda: None, "complete", lease)
        assert (outcome, sent) == (None, 2)
        assert q.get(item_id).status is Status.DONE
