"""Keyword arguments renamed in a release, still accepted with a `DeprecationWarning` for one more.

`@renamed(max="limit", lease="lease_seconds")` on a function lets callers pass the old keyword:
it is handed on under the new name with a warning naming that name, and passing both is a
`TypeError`. The wrapper keeps the function's signature (`functools.wraps` sets `__wrapped__`,
so `inspect.signature` shows only the new names) and, on the hot path, does one set check more
than the call itself when no old keyword is passed.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import Any, Final, ParamSpec, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")

CLAIM_RENAMES: Final[Mapping[str, str]] = MappingProxyType(
    {"max": "limit", "lease": "lease_seconds"}
)
"""The claim verbs' renamed keywords (old -> new), in the library, the clients and the HTTP API."""


def rename_keywords(
    function: str, renames: Mapping[str, str], kwargs: dict[str, Any], stacklevel: int
) -> dict[str, Any]:
    """`kwargs` with each old keyword moved to its new name, warning once per old keyword;
    a `TypeError` if a caller passed both."""
    fixed = dict(kwargs)
    for old, new in renames.items():
        if old not in fixed:
            continue
        if new in fixed:
            raise TypeError(f"{function}() got both {old!r} (deprecated) and {new!r}; pass {new!r}")
        warnings.warn(
            f"{function}(): the keyword {old!r} is deprecated, use {new!r}",
            DeprecationWarning,
            stacklevel=stacklevel + 1,
        )
        fixed[new] = fixed.pop(old)
    return fixed


def renamed(**renames: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Accept each old keyword (`old="new"`) for its new name, with a `DeprecationWarning`."""
    olds = frozenset(renames)

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        if inspect.iscoroutinefunction(fn):
            coroutine = cast(Callable[..., Coroutine[Any, Any, Any]], fn)

            @functools.wraps(fn)
            async def awaited(*args: Any, **kwargs: Any) -> Any:
                if not olds.isdisjoint(kwargs):
                    kwargs = rename_keywords(awaited.__qualname__, renames, kwargs, 2)
                return await coroutine(*args, **kwargs)

            return cast(Callable[P, T], awaited)

        plain = cast(Callable[..., Any], fn)

        @functools.wraps(fn)
        def called(*args: Any, **kwargs: Any) -> Any:
            if not olds.isdisjoint(kwargs):
                kwargs = rename_keywords(called.__qualname__, renames, kwargs, 2)
            return plain(*args, **kwargs)

        return cast(Callable[P, T], called)

    return decorate


def claim_renamed(fn: Callable[P, T]) -> Callable[P, T]:
    """`renamed` with the claim verbs' renames (`CLAIM_RENAMES`)."""
    return renamed(**CLAIM_RENAMES)(fn)
