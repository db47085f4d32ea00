"""The "http" transport: the contract suite through `Client` against a live uvicorn server.

`running_server(app)` serves an app on a free loopback port from a thread of this process and
yields its base URL; the "http" transport builds a test server (no auth, the test-only clock
override on, caps opened up to the library's own limits) over the test's store.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from workclaim import AsyncQueue, Settings
from workclaim.api import QueueAPI
from workclaim.client import Client
from workclaim.server import ServerConfig, create_app
from workclaim.validation import MAX_BATCH, MAX_LEASE_SECONDS, MAX_WAIT_SECONDS


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is ready, and leaves signals to the main thread."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    def install_signal_handlers(self) -> None:  # pragma: no cover - uvicorn < 0.29 hook
        return None


@contextmanager
def running_server(app: FastAPI, **options: Any) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 on a free port in a thread; yields the base URL."""
    # uvicorn binds port 0 itself (a socket handed in via `sockets=` loses TCP_NODELAY on
    # accepted connections here, which costs a 40 ms delayed ACK per keep-alive request).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **options
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        if not server.ready.wait(30):
            raise RuntimeError("the test server did not start within 30 s")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def server_config(settings: Settings, **changes: Any) -> ServerConfig:
    """A server config for tests: no auth, clock override on, the library's own caps."""
    options: dict[str, Any] = {
        "settings": settings,
        "no_auth": True,
        "allow_clock_override": True,
        "max_wait": MAX_WAIT_SECONDS,
        "max_lease": MAX_LEASE_SECONDS,
        "max_batch": MAX_BATCH,
    }
    options.update(changes)
    return ServerConfig(**options)


class _Dispatcher:
    """One live server for the whole session, serving each test's app under `/t/<n>`: starting
    a uvicorn server per test would cost about 0.4 s each."""

    def __init__(self) -> None:
        self.apps: dict[str, ASGIApp] = {}
        self._lock = threading.Lock()
        self._count = itertools.count(1)
        self._base: str | None = None
        self._stack = ExitStack()

    def base(self) -> str:
        with self._lock:
            if self._base is None:
                self._base = self._stack.enter_context(running_server(self))  # type: ignore[arg-type]
                atexit.register(self._stack.close)
            return self._base

    def add(self, app: ASGIApp) -> str:
        key = str(next(self._count))
        self.apps[key] = app
        return key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        _, _, key, *rest = scope["path"].split("/", 3)
        app = self.apps.get(key)
        if app is None:
            await PlainTextResponse("no such test app", status_code=404)(scope, receive, send)
            return
        path = "/" + (rest[0] if rest else "")
        await app({**scope, "path": path, "raw_path": path.encode()}, receive, send)


_DISPATCHER = _Dispatcher()


@contextmanager
def http(url: str, settings: Settings) -> Iterator[QueueAPI]:
    """The Queue API through `Client` against a live server over the store at `url`."""
    config = server_config(settings)
    queue = AsyncQueue(url, settings=settings, max_threads=config.threads)
    key = _DISPATCHER.add(create_app(queue, config))
    try:
        with Client(f"{_DISPATCHER.base()}/t/{key}", retries=0) as client:
            yield client
    finally:
        del _DISPATCHER.apps[key]
        asyncio.run(queue.close())
