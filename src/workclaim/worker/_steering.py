"""How a handler steers what happens to a failed item: the exceptions it may raise, and the
failure (error text, retry or not, after what delay) the runtime reports for any exception.

    raise Permanent("the address is malformed")   # dead now, no retry
    raise RetryAfter(30, "rate limited")          # queued again in exactly 30 s

Any other exception is retried after the backoff (the store's, or the `Backoff` given) while
attempts remain; the item's `max_attempts` bounds every retry, `RetryAfter`'s too.
"""

from __future__ import annotations

import asyncio
import math
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from workclaim.models import Lease
from workclaim.retry import Backoff
from workclaim.validation import MAX_DELAY_SECONDS


class Permanent(Exception):
    """Raise from a handler to fail the item for good: `dead` now, no further attempt."""


class RetryAfter(Exception):
    """Raise from a handler to retry the item after exactly `seconds` (an attempt is used up:
    on the item's last attempt it goes `dead`)."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= MAX_DELAY_SECONDS
            or math.isnan(seconds)
        ):
            raise ValueError(
                f"RetryAfter needs 0 to {MAX_DELAY_SECONDS:.0f} seconds, got {seconds!r}"
            )
        super().__init__(reason or f"retry after {seconds:g} s")
        self.seconds = float(seconds)
        self.reason = reason


class HandlerTimeout(TimeoutError):
    """The handler ran past its timeout; the item was failed (and retried while attempts
    remain)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What to report for a failed run: the stored error, whether to retry, and the delay
    (None: the store's backoff)."""

    error: str
    retry: bool = True
    retry_delay: float | None = None


def describe(exc: BaseException) -> str:
    """The stored error: `Type: message` on the first line, then the traceback."""
    text = "".join(traceback.format_exception(exc))
    return f"{type(exc).__name__}: {exc}\n{text}"


def failure_of(exc: BaseException, attempt: int, backoff: Backoff | None = None) -> Failure:
    """The failure to report for `exc` raised on `attempt`: `Permanent` is dead now,
    `RetryAfter` retries after its delay, anything else after `backoff` (None: the store's)."""
    if isinstance(exc, Permanent):
        return Failure(describe(exc), retry=False)
    if isinstance(exc, RetryAfter):
        return Failure(describe(exc), retry_delay=exc.seconds)
    delay = None if backoff is None else backoff.delay(attempt)
    return Failure(describe(exc), retry_delay=delay)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-item bounds: the handler's timeout (None: unbounded) and the backoff of its retries
    (None: the store's)."""

    timeout: float | None = None
    backoff: Backoff | None = None


def limits_for(handler: object, lease: Lease, default: Limits) -> Limits:
    """The limits for one lease: the handler's own `limits_for(lease)` when it has one (the
    task dispatcher: each task has its own), else the worker's."""
    own = getattr(handler, "limits_for", None)
    if own is None:
        return default
    limits = own(lease)
    return default if limits is None else limits


async def bounded(awaitable: Awaitable[Any], timeout: float | None) -> Any:
    """Await an async handler, cancelling it when `timeout` passes."""
    if timeout is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise HandlerTimeout(f"the handler ran past its timeout of {timeout:g} s") from None
