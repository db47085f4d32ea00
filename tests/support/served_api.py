"""A live `workclaim serve` (uvicorn in a thread) on a SQLite store, with tokens for named
callers, and the problem-document check the HTTP tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.http_transport import running_server
from workclaim import AsyncQueue, Settings
from workclaim.client import Client
from workclaim.server import ServerConfig, create_app
from workclaim.server.auth import TokenStore, new_token, token_line

PROBLEM = "application/problem+json"
T = "urn:workclaim:problem:"


@dataclass
class Api:
    """The server's base URL, each caller's bearer token, and the queue the server runs on."""

    base: str
    tokens: dict[str, str]
    queue: AsyncQueue

    def http(self, who: str | None) -> httpx.Client:
        """A raw HTTP client as `who` (None: no token)."""
        headers = {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def call(self, who: str | None, method: str, path: str, **options: Any) -> httpx.Response:
        """One request as `who` (None: no token) on a connection closed afterwards."""
        with self.http(who) as c:
            return c.request(method, path, **options)

    def client(self, who: str) -> Client:
        """workclaim's own client as `who`, with no retries."""
        return Client(self.base, token=self.tokens[who], retries=0)


@contextmanager
def served_api(
    directory: Path,
    scopes: dict[str, list[str]],
    *,
    settings: Settings | None = None,
    **config: Any,
) -> Iterator[Api]:
    """Serve a fresh SQLite store in `directory` with one token per caller of `scopes` and the
    given `ServerConfig` options; closes the queue afterwards."""
    tokens = {who: new_token() for who in scopes}
    lines = "\n".join(token_line(tokens[who], who, s) for who, s in scopes.items())
    server_config = ServerConfig(
        settings=settings or Settings(), tokens=TokenStore(lines=lines), **config
    )
    queue = AsyncQueue(f"sqlite:///{directory / 'w.db'}", settings=server_config.settings)
    try:
        with running_server(create_app(queue, server_config)) as base:
            yield Api(base, tokens, queue)
    finally:
        asyncio.run(queue.close())


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """Assert a problem document of this status and type, with a title and a detail; returns
    it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    doc: dict[str, Any] = response.json()
    assert doc["type"] == T + slug and doc["status"] == status and doc["title"] and doc["detail"]
    return doc
