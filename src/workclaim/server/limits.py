"""Resource caps: request body size (enforced while reading), and long-polls per caller and in
all.

Neither uvicorn nor FastAPI caps a body by default; `BodyLimit` answers 413 from the
`Content-Length` header when it is over, and otherwise counts bytes as they arrive, so an
oversize chunked body is refused before it is all in memory.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workclaim.server.problems import Problem, problem_response


class BodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes`, checked while it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTPException passes through FastAPI's body reading unchanged.
                    raise HTTPException(413, detail=self._detail())
            return message

        await self.app(scope, counting_receive, send)

    def _detail(self) -> str:
        return f"the request body is over the cap of {self.max_bytes} bytes; send less"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            "body-too-large",
            self._detail(),
            instance=scope.get("path"),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class LongPollLimiter:
    """Counts the long-polls waiting, refusing more than `per_caller` for one identity and more
    than `total` in all."""

    def __init__(self, per_caller: int, total: int) -> None:
        self.per_caller = per_caller
        self.total = total
        self._active: Counter[str] = Counter()
        self._waiting = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Long-polls in progress, all callers."""
        with self._lock:
            return self._waiting

    @contextmanager
    def slot(self, identity: str) -> Iterator[None]:
        """Hold one long-poll slot for `identity`; `Problem` 429 when none is free."""
        with self._lock:
            if self._active[identity] >= self.per_caller:
                raise _busy(f"at most {self.per_caller} long-polls may wait at once per token")
            if self._waiting >= self.total:
                raise _busy(f"this server holds at most {self.total} waiting long-polls")
            self._active[identity] += 1
            self._waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1
                self._active[identity] -= 1
                if self._active[identity] <= 0:
                    del self._active[identity]


def _busy(why: str) -> Problem:
    return Problem(
        "too-many-requests",
        f"{why}; retry after a second or use fewer concurrent claims",
        headers={"Retry-After": "1"},
    )
