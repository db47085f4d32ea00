"""`Queue`, `AsyncQueue`, `Client` and `AsyncClient` offer the one API of `workclaim.api`.

mypy checks the types (`_conforms` below); this test checks what mypy lets pass: every method of
the protocol exists on each implementation with the same parameter names, kinds and defaults,
and no implementation has a public method the protocol lacks. The few differences are on
purpose, and listed here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from workclaim import AsyncQueue, Queue
from workclaim.api import AsyncQueueAPI, QueueAPI
from workclaim.client import AsyncClient, Client

IMPLEMENTATIONS: list[tuple[type[Any], type[Any]]] = [
    (Queue, QueueAPI),
    (Client, QueueAPI),
    (AsyncQueue, AsyncQueueAPI),
    (AsyncClient, AsyncQueueAPI),
]

# Parameters an implementation adds (keyword-only, with a default): `connection` joins the
# caller's PostgreSQL transaction, which only the library itself can.
ADDED = {
    (Queue, "enqueue"): {"connection"},
    (Queue, "enqueue_many"): {"connection"},
    (AsyncQueue, "enqueue"): {"connection"},
    (AsyncQueue, "enqueue_many"): {"connection"},
}
# Public methods an implementation has beyond the protocol: `fire_slot` is the scheduler's own
# write (`workclaim.scheduler`), which runs beside a store, never over HTTP.
BEYOND = {Queue: {"fire_slot"}}
# Parameters an implementation makes optional: over HTTP the server names the worker after the
# bearer token when `worker` is left out.
OPTIONAL = {
    (Client, "claim"): {"worker"},
    (Client, "complete_and_claim"): {"worker"},
    (AsyncClient, "claim"): {"worker"},
    (AsyncClient, "complete_and_claim"): {"worker"},
}


def _conforms(
    queue: Queue, client: Client, async_queue: AsyncQueue, async_client: AsyncClient
) -> tuple[QueueAPI, QueueAPI, AsyncQueueAPI, AsyncQueueAPI]:
    """mypy checks here that each implementation meets its protocol."""
    return queue, client, async_queue, async_client


def _methods(protocol: type[Any]) -> dict[str, Callable[..., Any]]:
    """The methods the protocol itself declares (not those `Protocol` adds)."""
    prefix = f"{protocol.__qualname__}."
    return {
        name: value
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and value.__qualname__.startswith(prefix)
    }


def _shape(parameter: inspect.Parameter) -> tuple[str, Any, Any]:
    return parameter.name, parameter.kind, parameter.default


def test_the_protocols_hold_the_whole_api() -> None:
    sync, asynchronous = _methods(QueueAPI), _methods(AsyncQueueAPI)
    assert {"enqueue", "claim", "complete_and_claim", "purge", "__enter__"} <= sync.keys()
    assert sync.keys() - {"__enter__", "__exit__"} == asynchronous.keys() - {
        "__aenter__",
        "__aexit__",
    }
    for name, method in sync.items():
        if name in asynchronous:
            assert inspect.signature(method) == inspect.signature(asynchronous[name]), name


@pytest.mark.parametrize(
    ("implementation", "protocol"), IMPLEMENTATIONS, ids=[i.__name__ for i, _ in IMPLEMENTATIONS]
)
def test_each_implementation_has_every_method_as_declared(
    implementation: type[Any], protocol: type[Any]
) -> None:
    declared = _methods(protocol)
    public = {name for name in dir(implementation) if not name.startswith("_")}
    public -= BEYOND.get(implementation, set())
    assert public == {name for name in declared if not name.startswith("_")}
    for name, method in declared.items():
        found = getattr(implementation, name)
        assert inspect.iscoroutinefunction(found) == inspect.iscoroutinefunction(method), name
        wanted = list(inspect.signature(method).parameters.values())
        have = list(inspect.signature(found).parameters.values())
        added = ADDED.get((implementation, name), set())
        extra = [p for p in have if p.name in added]
        assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in extra), name
        have = [p for p in have if p.name not in added]
        optional = OPTIONAL.get((implementation, name), set())
        assert [p.name for p in have] == [p.name for p in wanted], name
        for mine, theirs in zip(have, wanted, strict=True):
            if mine.name in optional:
                assert (mine.kind, theirs.default) == (theirs.kind, theirs.empty), name
                assert mine.default is None, name
            else:
                assert _shape(mine) == _shape(theirs), f"{implementation.__name__}.{name}"
