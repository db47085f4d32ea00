"""What the runtime says about a handler: its signature checked once, and the error it stores.

A handler is called as `fn(ctx)`. A signature that cannot take one positional argument is
refused when the handler is registered (or `run()` starts), not on every item; a handler whose
one parameter is named like a payload (Celery style, `def send(payload)`) gets a warning at
start, and an error that shows it was handed a `Context` where it expected the payload gets the
same hint in front of the stored error. Stored tracebacks start at the handler's frame: the
runtime's own frames (and asyncio's, for `async def` handlers) above it are dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from workclaim.errors import ValidationError

log = logging.getLogger("workclaim.worker")

_PAYLOAD_NAMES: Final = frozenset({"payload", "data", "body", "message", "msg", "args", "kwargs"})
_CONTEXT_ERRORS: Final = ("'Context' object", "Context.__", "Context object")
_OWN_DIRS: Final = (os.path.dirname(__file__), os.path.dirname(asyncio.__file__))


def describe(fn: Callable[..., Any]) -> str:
    """`name(parameters)`, as the handler was written (`send(payload)`)."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    try:
        params = ", ".join(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        params = "..."
    return f"{name}({params})"


def _hint(fn: Callable[..., Any]) -> str:
    return (
        f"handler {describe(fn)} was called with a Context: take `ctx` and read "
        "`ctx.lease.payload` for the item's payload"
    )


def check(fn: Callable[..., Any]) -> None:
    """Refuse a handler that cannot be called as `fn(ctx)`; warn when its one parameter is
    named like a payload (it will get a Context, not the payload)."""
    if not callable(fn):
        raise ValidationError(f"a handler must be callable, got {fn!r}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # nothing to inspect: the first call tells
    try:
        signature.bind(object())
    except TypeError as exc:
        raise ValidationError(
            f"handler {describe(fn)} cannot be called as handler(ctx) ({exc}): a handler takes "
            "one argument, the Context; read the payload from `ctx.lease.payload`"
        ) from None
    first = next(iter(signature.parameters.values()))
    if first.name in _PAYLOAD_NAMES and first.annotation in (inspect.Parameter.empty, "Any"):
        log.warning("%s: it will be called with a Context, not the payload", _hint(fn))


def explain(fn: Callable[..., Any], exc: BaseException) -> str | None:
    """The hint to put before the error when `exc` shows the handler took the Context for its
    payload (`'Context' object is not subscriptable`, no attribute `get`, ...); else None."""
    text = str(exc)
    if isinstance(exc, TypeError | AttributeError) and any(m in text for m in _CONTEXT_ERRORS):
        return _hint(fn)
    return None


def error_text(fn: Callable[..., Any], exc: BaseException) -> str:
    """What a failure stores: `Type: message`, the hint when there is one, and the traceback
    from the handler's frame down."""
    head = f"{type(exc).__name__}: {exc}"
    hint = explain(fn, exc)
    if hint is not None:
        head = f"{hint} ({head})"
    lines = traceback.format_exception(type(exc), exc, _from_handler(exc.__traceback__))
    return f"{head}\n{''.join(lines)}"


def _from_handler(tb: TracebackType | None) -> TracebackType | None:
    """`tb` without its leading frames from the runtime or asyncio (the handler's call)."""
    while tb is not None and tb.tb_next is not None:
        if os.path.dirname(tb.tb_frame.f_code.co_filename) not in _OWN_DIRS:
            break
        tb = tb.tb_next
    return tb
