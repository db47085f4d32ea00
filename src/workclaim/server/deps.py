"""What every route depends on: the app's `State`, the caller, the clock, and the scope checks.

Routes take these as FastAPI dependencies (`St`, `Caller`, `Now`; `QueuePath` and `IdPath` for
the path) and call the `require_*` checks, so that the answer to "who may do this" is written
once for the API and the dashboard.
The dependencies are `async def` so that they run on the event loop: FastAPI would run a plain
`def` dependency on the framework's small default thread pool, one thread hop per request each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from workclaim.queue import AsyncQueue
from workclaim.schedules import MAX_SCHEDULE_NAME
from workclaim.server.activity import Activity
from workclaim.server.auth import ANONYMOUS, Principal, TokensUnavailable
from workclaim.server.config import ServerConfig
from workclaim.server.limits import LongPollLimiter
from workclaim.server.longpoll import LongPolls
from workclaim.server.metrics import Metrics
from workclaim.server.problems import Problem
from workclaim.server.schemas import NAME_REGEX
from workclaim.validation import MAX_ID
from workclaim.wire import CLOCK_HEADER

bearer = HTTPBearer(auto_error=False, description="A token from `workclaim token create`.")


@dataclass
class State:
    """What every request needs: the queue, the config, metrics and the long-poll limiter."""

    queue: AsyncQueue
    config: ServerConfig
    metrics: Metrics
    longpolls: LongPollLimiter
    waiting: LongPolls
    activity: Activity


def app_state(request: Request) -> State:
    """The `State` that `create_app` put on the app."""
    st: State = request.app.state.workclaim
    return st


async def state(request: Request) -> State:
    """The app's state."""
    return app_state(request)


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, from its bearer token (401 without a valid one)."""
    st = app_state(request)
    if st.config.no_auth:
        return ANONYMOUS
    challenge = {"WWW-Authenticate": 'Bearer realm="workclaim"'}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem("unauthorized", "send Authorization: Bearer <token>", headers=challenge)
    assert st.config.tokens is not None
    try:
        found = st.config.tokens.lookup(credentials.credentials)
    except TokensUnavailable as exc:
        detail = "the server cannot use its tokens file; see its log"
        raise Problem("service-unavailable", detail, headers={"Retry-After": "5"}) from exc
    if found is None:
        raise Problem("unauthorized", "the bearer token is not valid", headers=challenge)
    if found.expired():
        raise Problem("unauthorized", "the bearer token has expired", headers=challenge)
    return found


async def clock(
    request: Request,
    x_workclaim_now: Annotated[
        str | None,
        Header(
            description="TEST ONLY, honoured only by a server started with the clock override: "
            "the store time to use for this call (ISO 8601 with offset)."
        ),
    ] = None,
) -> datetime | None:
    """The injected `now` of a test server, or None (the store's clock)."""
    if x_workclaim_now is None or not app_state(request).config.allow_clock_override:
        return None
    try:
        now = datetime.fromisoformat(x_workclaim_now)
    except ValueError as exc:
        raise Problem("bad-request", f"{CLOCK_HEADER} is not an ISO 8601 datetime") from exc
    if now.tzinfo is None:
        raise Problem("bad-request", f"{CLOCK_HEADER} needs a UTC offset")
    return now


Caller = Annotated[Principal, Depends(principal)]
Now = Annotated[datetime | None, Depends(clock)]
St = Annotated[State, Depends(state)]
QueuePath = Annotated[str, Path(pattern=NAME_REGEX, max_length=128, description="Queue name.")]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Item id.")]
SchedulePath = Annotated[
    str, Path(pattern=NAME_REGEX, max_length=MAX_SCHEDULE_NAME, description="Schedule name.")
]


def require_admin(caller: Principal) -> None:
    """403 unless the token has the `admin` scope."""
    if not caller.admin:
        raise Problem("forbidden", "this needs a token with the `admin` scope")


def require_claim(caller: Principal, queues: Iterable[str]) -> None:
    """403 unless the token has the `work` scope on every one of `queues`."""
    for name in queues:
        if not caller.may_work(name):
            raise Problem("forbidden", f"this token may not claim from queue {name!r}")


def require_enqueue(caller: Principal, queue: str) -> None:
    """403 unless the token has the `enqueue` scope on `queue`."""
    if not caller.may_enqueue(queue):
        raise Problem("forbidden", f"this token may not enqueue on queue {queue!r}")


def require_read(caller: Principal, queue: str) -> None:
    """403 unless the token may list `queue` (`enqueue` or `work` scope on it)."""
    if not (caller.may_enqueue(queue) or caller.may_work(queue)):
        raise Problem("forbidden", f"this token may not read queue {queue!r}")
