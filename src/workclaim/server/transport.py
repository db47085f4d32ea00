"""The HTTP/1.1 connection layer of `workclaim serve`: uvicorn's httptools protocol, bounded.

uvicorn's h11 parser caps a request head, but the `server` extra installs httptools, which has
no cap and no deadline: a client could send a 20 MB header, or keep hundreds of connections
open by sending a byte a second, until the process runs out of memory or descriptors.
`GuardedProtocol` keeps httptools' speed and adds, per connection:

- a head deadline (`header_timeout`): from the connection, or from the first byte of a request
  on a kept-alive one, to the end of its headers; then 408 (or a silent close when nothing came);
- a body deadline (`body_timeout`): from the end of the headers to the end of the body; 408;
- a head cap (`max_header_bytes`), counted as bytes arrive, so an unfinished head never grows
  past it: 431 and close;
- a connection cap (`ServerConfig.connection_cap`): at the cap the connection idle longest
  (no request in progress) is closed to make room; when every one is busy, 503 and close.

Beyond the one deadline a new connection gets, a request that arrives in one read (the usual
case) arms no timer. Every refusal here,
including uvicorn's own 400 for a malformed request, is an `application/problem+json` answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from workclaim.server import problems
from workclaim.server.config import ServerConfig
from workclaim.server.guards import API_CSP

log = logging.getLogger("workclaim.server")

_HEAD, _BODY = "head", "body"


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request head over the cap."""


class GuardedProtocol(HttpToolsProtocol):
    """httptools with a head cap, head and body deadlines, and a connection cap."""

    limits: ClassVar[ServerConfig]
    cap: ClassVar[int]
    _warned_at: ClassVar[float] = float("-inf")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # what the armed timer waits for
        self._head_open = False
        self._head_read = 0  # bytes read while the head was unfinished
        self._body_open = False
        self._refusal: tuple[str, str] | None = None
        self._idle_since = self.loop.time()

    # -- connections ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.cap and not self._evict_idle():
            self.transport = transport
            self._warn_full()
            self._refuse("service-unavailable", "the server holds too many connections; retry")
            return
        super().connection_made(transport)
        self._arm(_HEAD)  # the first request's head must come in time too

    def _warn_full(self) -> None:
        """Log that the cap refuses connections, at most once a minute (a flood is not a log
        flood)."""
        now = self.loop.time()
        if now - GuardedProtocol._warned_at >= 60:
            GuardedProtocol._warned_at = now
            log.warning("connection cap of %d reached: refusing new connections", self.cap)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    @property
    def waiting(self) -> bool:
        """True while no request is with the application: the connection is idle or still
        sending a request's head, and closing it loses no work."""
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _evict_idle(self) -> bool:
        """Close the connection that has waited longest for a request head (an idle keep-alive
        or a slow sender) to make room; False if every one has a request in progress."""
        idle = [c for c in self.connections if isinstance(c, GuardedProtocol) and c.waiting]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        oldest.transport.close()
        self.connections.discard(oldest)
        return True

    # -- deadlines -----------------------------------------------------------------------------

    def _arm(self, phase: str) -> None:
        if self._phase == phase:
            return
        self._disarm()
        delay = self.limits.header_timeout if phase == _HEAD else self.limits.body_timeout
        self._timer = self.loop.call_later(delay, self._expired)
        self._phase = phase

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = None

    def _expired(self) -> None:
        """A deadline passed: 408 for a request part-way in, a plain close otherwise."""
        phase, self._timer, self._phase = self._phase, None, None
        if self.transport.is_closing():
            return
        if phase == _HEAD and not self.waiting:  # a pipelined head behind a request in progress
            self._arm(_HEAD)
            return
        if phase == _BODY and not self.cycle.response_started:
            self._refuse("request-timeout", "the request body did not arrive in time")
        elif phase == _HEAD and self._head_open:
            self._refuse("request-timeout", "the request headers did not arrive in time")
        else:
            self.transport.close()

    # -- reading -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._head_open:
            self._head_read += len(data)
            if self._head_read > self.limits.max_header_bytes:
                self._refuse("headers-too-large", self._too_large())
                return
            self._arm(_HEAD)
        elif self._body_open:
            self._arm(_BODY)
        else:
            self._disarm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_read = 0

    def on_headers_complete(self) -> None:
        # A head that came in one read is measured here, once (cheaper than per header).
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.limits.max_header_bytes:
            self._refusal = ("headers-too-large", self._too_large())
            raise HeadTooLarge  # stops the parser; uvicorn then calls send_400_response
        self._head_open = False
        self._body_open = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_open = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._idle_since = self.loop.time()
        super().on_response_complete()

    def _too_large(self) -> str:
        return f"the request line and headers are over {self.limits.max_header_bytes} bytes"

    # -- answers -------------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse (or that a callback stopped)."""
        slug, detail = self._refusal or ("bad-request", "the request is not valid HTTP/1.1")
        self._refuse(slug, detail)

    def _refuse(self, slug: str, detail: str) -> None:
        """Answer a problem document and close, without the application."""
        self._disarm()
        self._head_open = self._body_open = False
        status, _ = problems.PROBLEMS[slug]
        body = json.dumps(problems.problem_body(slug, detail)).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: ",
            problems.MEDIA_TYPE.encode(),
            b"\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\ncontent-security-policy: ",
            API_CSP.encode(),
            b"\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()


def protocol_for(config: ServerConfig) -> type[GuardedProtocol]:
    """A `GuardedProtocol` class bound to `config`'s limits, for uvicorn's `http=` option."""
    return type(
        "WorkclaimProtocol", (GuardedProtocol,), {"limits": config, "cap": config.connection_cap}
    )
