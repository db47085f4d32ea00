"""The three hot worker routes without FastAPI's per-request machinery.

`POST /worker/claim`, `/worker/complete` and `/worker/complete-and-claim` are most of a
worker's requests. FastAPI spends more event-loop time on each than the route itself does:
routing, solving four dependencies (`St`, `Caller` and its `HTTPBearer`, `Now`) and wrapping the
request took about 60% of it (see docs/http.md). `FastPath` answers the usual request to these
routes by calling the same route functions with the same arguments, built directly: the body
validated by the same pydantic model, the caller from the same `principal` check, no injected
clock. Anything unusual goes to FastAPI unchanged, with the body replayed: a body that is not
`application/json` or does not validate, a caller whose token is refused (so the 401 or 503 is
FastAPI's own), a test clock header, a `root_path`. Errors the route raises become problem
documents through the app's own exception handlers. So every answer is the one FastAPI gives.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workclaim import fastjson
from workclaim.server.auth import Principal
from workclaim.server.deps import State, bearer, principal
from workclaim.server.routes import workers
from workclaim.server.schemas import ClaimIn, CompleteAndClaimIn, CompleteIn

Route = Callable[..., Awaitable[Any]]
Handler = Callable[[Request, Any], Response | Awaitable[Response]]

# path -> (the route's body model, the route function); the route's parameters must be exactly
# those `FastPath._answer` supplies (a unit test checks, so a new dependency is not skipped).
ROUTES: dict[str, tuple[type[BaseModel], Route]] = {
    "/worker/claim": (ClaimIn, workers.claim),
    "/worker/complete": (CompleteIn, workers.complete),
    "/worker/complete-and-claim": (CompleteAndClaimIn, workers.complete_and_claim),
}
SUPPLIED = frozenset({"body", "request", "st", "caller", "now"})
_JSON = b"application/json"
_CLOCK = b"x-workclaim-now"


class _Delegate(Exception):
    """The request is not the usual one: FastAPI answers it."""


class FastPath:
    """ASGI middleware, inside the guards and limits and outside FastAPI's router."""

    def __init__(self, app: ASGIApp, *, fastapi: FastAPI, state: State) -> None:
        self.app = app
        self.fastapi = fastapi
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        body = b""
        try:
            body = await _read(request)
            response = await self._answer(request, body, *route)
        except _Delegate:
            await self.app(scope, _replay(body, receive), send)
            return
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            handled = handler(request, exc)
            response = await handled if inspect.isawaitable(handled) else handled
        await response(scope, receive, send)

    async def _answer(
        self, request: Request, body: bytes, model: type[BaseModel], route: Route
    ) -> Response:
        """The route's answer, or `_Delegate` before the route runs when FastAPI should answer."""
        content_type = None
        for name, value in request.scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == _CLOCK:
                raise _Delegate
        if content_type != _JSON:
            raise _Delegate
        st = self.state
        try:
            parsed = model.model_validate(fastjson.loads(body))
            caller: Principal = await principal(request, await bearer(request))
        except Exception:
            raise _Delegate from None
        kwargs: dict[str, Any] = {"body": parsed, "st": st, "caller": caller, "now": None}
        if route is workers.claim:
            kwargs["request"] = request
        answer: Response = await route(**kwargs)
        return answer

    def _handler(self, exc: Exception) -> Handler | None:
        """The app's handler for `exc`, as Starlette's exception middleware finds it (the one for
        `Exception` is the outermost layer's: an unexpected error goes on up, as it did)."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            found = self.fastapi.exception_handlers.get(cls)
            if found is not None:
                return found
        return None


async def _read(request: Request) -> bytes:
    """The body, or the error FastAPI raises when reading it fails (the body limit's 413 as it
    is, anything else, a client gone mid-body say, as its 400)."""
    try:
        return await request.body()
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(400, detail="There was an error parsing the body") from exc


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` with the body already read given again first."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def route_parameters(route: Route) -> frozenset[str]:
    """The parameter names of a route function (what FastAPI would supply)."""
    return frozenset(inspect.signature(route).parameters)
