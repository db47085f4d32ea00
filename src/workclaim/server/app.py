"""`create_app(queue_or_url, config)`: the FastAPI application of `workclaim serve`.

Blocking store calls run on `AsyncQueue`'s own thread pool (sized by `ServerConfig.threads`);
long-polls await the store's wake-up events and hold no thread and no connection while they wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workclaim._version import __version__
from workclaim.errors import ConfigError
from workclaim.queue import AsyncQueue
from workclaim.server import problems
from workclaim.server.activity import Activity
from workclaim.server.config import ServerConfig
from workclaim.server.dashboard import router as dashboard_router
from workclaim.server.deps import State
from workclaim.server.fastpath import FastPath
from workclaim.server.guards import BrowserGuard
from workclaim.server.limits import BodyLimit, LongPollLimiter
from workclaim.server.longpoll import LongPolls
from workclaim.server.metrics import Metrics
from workclaim.server.routes import admin, flow, operations, producers, schedules, workers

log = logging.getLogger("workclaim.server")

DESCRIPTION = """\
Atomic work claiming with fenced leases over HTTP.

Workers claim with `POST /worker/claim` (or the spike's `GET /worker/next`; a GET may be
repeated or prefetched by proxies, so prefer POST), then end each lease with
`/worker/complete`, `/worker/release` or `/worker/fail`, sending back the lease's `id` and
`token`, or end them and claim more in one call with `/worker/complete-and-claim`. A lease can
only be ended by the worker whose bearer token claimed it. The dashboard is at `/`; its data
comes from `/dashboard`, and scripts can list with `/queues`, `/queues/{queue}/items` and
`/items/{id}/history`. Flow control (admin): a queue's limits with `GET`/`PUT
/queues/{queue}/policy`, `POST /queues/{queue}/pause` and `/resume`, its busiest groups with
`GET /queues/{queue}/groups`; an item's `group` is given when it is enqueued. Schedules (admin):
`GET /schedules`, `GET`/`PUT`/`DELETE /schedules/{name}`, `POST /schedules/{name}/run`. Every
error is `application/problem+json` (RFC 9457) with a stable `type`
(`urn:workclaim:problem:<slug>`).
"""


class CatchAll:
    """ASGI middleware: an unexpected exception becomes a bare 500 problem, logged by class and
    place only (no message, which could hold a payload or SQL, and no stack trace)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
            log.error("unexpected %s at %s on %s", type(exc).__name__, where, scope.get("path"))
            if not started:
                response = problems.problem_response(
                    "internal-error", "internal error", instance=scope.get("path")
                )
                await response(scope, receive, send)


def create_app(queue_or_url: str | AsyncQueue, config: ServerConfig | None = None) -> FastAPI:
    """The service over a store URL (the app opens and closes its queue) or an open
    `AsyncQueue` (the caller closes it). `config` is required and says how callers
    authenticate: `ServerConfig(tokens=...)`, or `ServerConfig(no_auth=True)` for local
    development; there is no default, so a service never runs open by omission."""
    if config is None:
        raise ConfigError(
            "create_app needs a ServerConfig that says how callers authenticate: "
            "ServerConfig(tokens=TokenStore(path)), or ServerConfig(no_auth=True) for local "
            "development only"
        )
    owns = isinstance(queue_or_url, str)
    if isinstance(queue_or_url, str):
        queue = AsyncQueue(queue_or_url, settings=config.settings, max_threads=config.threads)
    else:
        queue = queue_or_url
    state = State(
        queue=queue,
        config=config,
        metrics=Metrics(),
        longpolls=LongPollLimiter(config.max_longpolls_per_token, config.max_longpolls),
        waiting=LongPolls(queue, config.max_batch),
        activity=Activity(every=config.sample_seconds or 2.0),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sampler = None
        if config.sample_seconds > 0:
            sampler = asyncio.create_task(state.activity.run(queue), name="workclaim-sampler")
        try:
            yield
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            if owns:
                await queue.close()

    app = FastAPI(
        title="workclaim",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if config.api_docs else None,
        redoc_url="/redoc" if config.api_docs else None,
    )
    app.state.workclaim = state
    problems.install(app)
    for audience in (workers, producers, admin, flow, schedules, operations):
        app.include_router(audience.router)
    app.include_router(dashboard_router)
    app.add_middleware(FastPath, fastapi=app, state=state)  # innermost of ours
    app.add_middleware(CatchAll)
    app.add_middleware(BodyLimit, max_bytes=config.body_cap)
    app.add_middleware(BrowserGuard, loopback_only=config.no_auth)  # outermost
    return app
