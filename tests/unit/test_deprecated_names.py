"""The keywords renamed in this release still work for one more, with a `DeprecationWarning`:
`max=` is `limit=` and a lease length `lease=` is `lease_seconds=`, on every class that claims
(`Queue`, `AsyncQueue`, `Client`, `AsyncClient`), and `Worker(lease=)` is `lease_seconds=`.
Passing both names is a `TypeError`; signatures show only the new names."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.test_cli import workclaim
from workclaim import AsyncQueue, Queue
from workclaim._deprecated import renamed
from workclaim.api import AsyncQueueAPI, QueueAPI
from workclaim.client import AsyncClient, Client
from workclaim.worker import Worker

LEASE_JSON = {
    "id": 1,
    "queue": "jobs",
    "payload": 1,
    "token": 7,
    "attempt": 1,
    "max_attempts": 3,
    "expires_at": "2026-01-02T03:04:35+00:00",
    "worker": "w-1",
    "lease_seconds": 30.0,
}


def old(**keywords: Any) -> dict[str, Any]:
    """Keywords the type checker does not see: the old names are not in any signature."""
    return keywords


@pytest.fixture
def queue() -> Iterator[Queue]:
    with Queue("sqlite:///:memory:") as q:
        yield q


# -- the decorator ---------------------------------------------------------------------------
@renamed(max="limit", lease="lease_seconds")
def _take(*, limit: int = 1, lease_seconds: float = 30.0) -> tuple[int, float]:
    return limit, lease_seconds


@renamed(max="limit")
async def _take_async(*, limit: int = 1) -> int:
    return limit


def test_an_old_keyword_is_passed_on_under_its_new_name_with_a_warning_at_the_caller() -> None:
    with pytest.warns(DeprecationWarning, match="'max' is deprecated, use 'limit'") as caught:
        assert _take(**old(max=5)) == (5, 30.0)
    assert caught[0].filename == __file__
    with pytest.warns(DeprecationWarning, match="'lease' is deprecated, use 'lease_seconds'"):
        assert _take(**old(lease=2.0)) == (1, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _take(limit=3, lease_seconds=4.0) == (3, 4.0)


def test_both_names_at_once_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"both 'max' .* and 'limit'"):
        _take(**old(max=1, limit=2))


def test_the_signature_shows_only_the_new_names_and_a_coroutine_stays_one() -> None:
    assert list(inspect.signature(_take).parameters) == ["limit", "lease_seconds"]
    assert inspect.iscoroutinefunction(_take_async)
    with pytest.warns(DeprecationWarning, match="use 'limit'"):
        assert asyncio.run(_take_async(**old(max=4))) == 4


# -- each class ------------------------------------------------------------------------------
CLAIMERS: list[type[Any]] = [Queue, AsyncQueue, Client, AsyncClient, QueueAPI, AsyncQueueAPI]


@pytest.mark.parametrize("cls", CLAIMERS, ids=lambda c: c.__name__)
def test_every_claim_signature_says_limit_and_lease_seconds(cls: type[Any]) -> None:
    for verb in ("claim", "complete_and_claim"):
        names = inspect.signature(getattr(cls, verb)).parameters
        assert "limit" in names and "lease_seconds" in names, (cls, verb)
        assert "max" not in names and "lease" not in names, (cls, verb)


def test_queue_takes_the_old_keywords_with_a_warning(queue: Queue) -> None:
    queue.enqueue("jobs", 1)
    queue.enqueue("jobs", 2)
    with pytest.warns(DeprecationWarning, match=r"Queue\.claim\(\): the keyword 'max'"):
        [first] = queue.claim("jobs", worker="w", **old(max=1))
    with pytest.warns(DeprecationWarning, match="'lease' is deprecated, use 'lease_seconds'"):
        lost, [second] = queue.complete_and_claim([first], "jobs", worker="w", **old(lease=5.0))
    assert lost == [] and second.lease_seconds == 5.0
    with pytest.raises(TypeError, match="both"):
        queue.claim("jobs", worker="w", **old(lease=5.0, lease_seconds=5.0))
    with pytest.raises(TypeError, match="both"):
        queue.complete_and_claim([], "jobs", worker="w", **old(max=0, limit=0))


def test_async_queue_takes_the_old_keywords_with_a_warning() -> None:
    async def run() -> None:
        async with AsyncQueue("sqlite:///:memory:") as q:
            await q.enqueue("jobs", 1)
            with (
                pytest.warns(DeprecationWarning, match=r"AsyncQueue\.claim\(\).*'max'"),
                pytest.warns(DeprecationWarning, match=r"AsyncQueue\.claim\(\).*'lease'"),
            ):
                [lease] = await q.claim("jobs", worker="w", **old(max=1, lease=9.0))
            assert lease.lease_seconds == 9.0
            with pytest.warns(DeprecationWarning, match="use 'limit'"):
                assert await q.complete_and_claim([lease], "jobs", worker="w", **old(max=0)) == (
                    [],
                    [],
                )
            with pytest.raises(TypeError, match="both"):
                await q.claim("jobs", worker="w", **old(max=1, limit=1))

    asyncio.run(run())


def _recording() -> tuple[list[dict[str, Any]], httpx.MockTransport]:
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if request.url.path == "/worker/complete-and-claim":
            return httpx.Response(200, json={"lost": [], "leases": [LEASE_JSON]})
        return httpx.Response(200, json={"leases": [LEASE_JSON]})

    return bodies, httpx.MockTransport(answer)


def test_client_takes_the_old_keywords_and_sends_the_new_names() -> None:
    bodies, transport = _recording()
    with Client("http://h", token="t", transport=transport) as client:
        with (
            pytest.warns(DeprecationWarning, match=r"Client\.claim\(\).*'max'") as caught,
            pytest.warns(DeprecationWarning, match=r"Client\.claim\(\).*'lease'"),
        ):
            client.claim("jobs", **old(max=2, lease=5.0))
        assert caught[0].filename == __file__
        with pytest.warns(DeprecationWarning, match=r"Client\.complete_and_claim\(\)"):
            client.complete_and_claim([], "jobs", **old(max=0))
        with pytest.raises(TypeError, match="both"):
            client.claim("jobs", **old(max=2, limit=2))
    assert {k: bodies[0][k] for k in ("limit", "lease_seconds")} == {"limit": 2, "lease_seconds": 5}
    assert bodies[1]["limit"] == 0
    assert not {"max", "lease"} & (bodies[0].keys() | bodies[1].keys())


def test_async_client_takes_the_old_keywords_and_sends_the_new_names() -> None:
    bodies, transport = _recording()

    async def run() -> None:
        async with AsyncClient("http://h", token="t", transport=transport) as client:
            with pytest.warns(DeprecationWarning, match=r"AsyncClient\.claim\(\).*'lease'"):
                await client.claim("jobs", **old(lease=5.0))
            with pytest.warns(DeprecationWarning, match="use 'limit'"):
                await client.complete_and_claim([], "jobs", **old(max=3))
            with pytest.raises(TypeError, match="both"):
                await client.complete_and_claim([], "jobs", **old(lease=1.0, lease_seconds=1.0))

    asyncio.run(run())
    assert bodies[0]["lease_seconds"] == 5.0 and bodies[1]["limit"] == 3


def test_worker_takes_lease_with_a_warning(queue: Queue) -> None:
    with pytest.warns(DeprecationWarning, match=r"Worker\.__init__\(\).*use 'lease_seconds'"):
        worker = Worker(queue, queues="jobs", **old(lease=6.0))
    assert worker.lease_seconds == 6.0 and worker.heartbeat_every == pytest.approx(2.0)
    assert "lease" not in inspect.signature(Worker).parameters
    with pytest.raises(TypeError, match="both"):
        Worker(queue, queues="jobs", **old(lease=6.0, lease_seconds=6.0))


# -- the command line ------------------------------------------------------------------------
def _worker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return workclaim("worker", *args)


def test_worker_lease_is_a_hidden_deprecated_alias_of_lease_seconds() -> None:
    shown = _worker_cli("--help")
    assert "--lease-seconds" in shown.stdout and "--lease " not in shown.stdout
    # --lease reaches the Worker as lease_seconds (0 is refused there, before anything runs)
    old = _worker_cli("json:dumps", "-q", "jobs", "--db", "sqlite:///:memory:", "--lease", "0")
    assert "--lease is deprecated, use --lease-seconds" in old.stderr
    assert old.returncode == 1 and "lease" in old.stderr.splitlines()[-1]
    both = _worker_cli(
        "json:dumps", "-q", "jobs", "--db", "sqlite:///:memory:", "--lease", "5",
        "--lease-seconds", "5",
    )  # fmt: skip
    assert both.returncode == 2 and "give --lease-seconds only" in both.stderr
