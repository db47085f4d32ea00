"""The HTTP client's sans-I/O core, offline: requests built, answers read, retries decided.

No server and no socket: answers are `httpx.Response` values built here, and a plan is driven
by hand (`drive`), the way `Client._run` drives it over the network.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from workclaim import wire
from workclaim.client import CLOCK_HEADER, PROBLEM_PREFIX, AccessDenied, AsyncClient, Client, _api
from workclaim.client._wire import (
    SHORT_204,
    Answer,
    Call,
    Calls,
    Options,
    Plan,
    Send,
    claim_pause,
    error_for,
    exchange,
    retry_after,
    should_retry,
)
from workclaim.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidState,
    ItemNotFound,
    LeaseLost,
    PayloadTooLarge,
    ValidationError,
)
from workclaim.models import EventKind, Lease, Status

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LEASE = Lease(
    id=7,
    queue="jobs",
    payload={"n": 1},
    token=42,
    attempt=1,
    max_attempts=3,
    expires_at=NOW,
    worker="w-1",
    lease_seconds=30.0,
)
LEASE_JSON = {
    "id": 7,
    "queue": "jobs",
    "payload": {"n": 1},
    "token": 42,
    "attempt": 1,
    "max_attempts": 3,
    "expires_at": NOW.isoformat(),
    "worker": "w-1",
    "lease_seconds": 30,
}
ITEM_JSON = {
    "id": 7,
    "queue": "jobs",
    "payload": {"n": 1},
    "status": "claimed",
    "priority": 0,
    "run_at": NOW.isoformat(),
    "attempts": 1,
    "max_attempts": 3,
    "dedupe_key": None,
    "worker": "w-1",
    "expires_at": None,
    "last_error": None,
    "result": None,
    "created_at": NOW.isoformat(),
    "updated_at": NOW.isoformat(),
}


def options(retries: int = 3, backoff: float = 0.1) -> Options:
    return Options("http://127.0.0.1:8000/", "wc_secret", 10.0, retries, backoff)


def problem(status: int, slug: str = "", detail: str = "", **headers: str) -> httpx.Response:
    doc = {"type": PROBLEM_PREFIX + slug, "title": slug, "detail": detail} if slug else {}
    return httpx.Response(status, json=doc, headers=headers)


def drive(plan: Plan[Any], answers: list[Answer]) -> tuple[Any, list[Send | float]]:
    """Run `plan`, answering each `Send` with the next of `answers`; returns (result, steps)."""
    steps: list[Send | float] = []
    try:
        step = next(plan)
        while True:
            steps.append(step)
            step = plan.send(answers.pop(0) if isinstance(step, Send) else None)
    except StopIteration as done:
        return done.value, steps


def body(send: Send) -> Any:
    return json.loads(send.options["content"])


# -- the wire constants ----------------------------------------------------------------------
def test_client_and_server_share_the_wire_constants() -> None:
    from workclaim.server import problems

    assert (CLOCK_HEADER, PROBLEM_PREFIX) == ("X-Workclaim-Now", "urn:workclaim:problem:")
    assert CLOCK_HEADER is wire.CLOCK_HEADER and PROBLEM_PREFIX is wire.PROBLEM_PREFIX
    assert problems.TYPE_PREFIX is wire.PROBLEM_PREFIX
    assert problems.MEDIA_TYPE == wire.PROBLEM_MEDIA_TYPE == "application/problem+json"
    assert wire.SCOPE_KINDS == ("enqueue", "work", "admin")


# -- building requests -----------------------------------------------------------------------
def test_options_check_the_connection_settings() -> None:
    assert options().url == "http://127.0.0.1:8000"
    assert options().headers == {
        "Accept": "application/json, application/problem+json",
        "Authorization": "Bearer wc_secret",
    }
    assert "Authorization" not in Options("http://h", None, 10.0, 3, 0.1).headers
    with pytest.raises(ConfigError, match="not a server URL"):
        Options("ftp://h", None, 10.0, 3, 0.1)
    with pytest.raises(ConfigError, match="timeout"):
        Options("http://h", None, 0.01, 3, 0.1)
    with pytest.raises(ConfigError, match="retries"):
        Options("http://h", None, 10.0, 21, 0.1)


def test_a_request_carries_the_clock_a_json_body_and_a_timeout_stretched_by_the_wait() -> None:
    send = options().request(
        Calls.claim("jobs", worker="w-1", lease_seconds=30, limit=10, wait=20, now=NOW)
    )
    assert (send.method, send.path) == ("POST", "/worker/claim")
    assert send.options["headers"] == {
        CLOCK_HEADER: NOW.isoformat(),
        "Content-Type": "application/json",
    }
    assert body(send) == {
        "queues": ["jobs"],
        "lease_seconds": 30,
        "limit": 10,
        "wait": 20,
        "worker": "w-1",
    }
    timeout = send.options["timeout"]
    assert (timeout.read, timeout.connect) == (30.0, 5.0)
    assert "params" not in send.options


def test_a_read_sends_its_query_and_no_body() -> None:
    send = options().request(Calls.history(7, limit=10, start=2, newest_first=True))
    assert (send.method, send.path) == ("GET", "/items/7/history")
    assert send.options["params"] == {"limit": 10, "start": 2, "order": "newest"}
    assert "content" not in send.options and send.options["headers"] == {}


def test_a_naive_now_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        options().request(Calls.stats("jobs", now=datetime(2026, 1, 1)))


def test_arguments_are_checked_like_the_library_checks_them() -> None:
    with pytest.raises(ValidationError):
        Calls.claim("", worker=None, lease_seconds=30, limit=1, wait=0, now=None)
    with pytest.raises(ValidationError):
        Calls.claim("jobs", worker=None, lease_seconds=30, limit=0, wait=0, now=None)
    with pytest.raises(ValidationError, match="either delay or run_at"):
        Calls.enqueue(
            "jobs",
            1,
            priority=0,
            delay=5,
            run_at=NOW,
            max_attempts=None,
            dedupe_key=None,
            now=None,
        )
    with pytest.raises(ValidationError, match="expected a Lease"):
        Calls.complete("not a lease", result=None, now=None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="status must be one of"):
        Calls.items("jobs", "sleeping", limit=10, after=None)


def test_bodies_carry_the_fencing_reference_and_the_options() -> None:
    fail = Calls.fail(LEASE, ValueError("boom"), retry=False, now=None)
    assert fail.body == {
        "id": 7,
        "token": 42,
        "worker": "w-1",
        "attempt": 1,
        "error": "ValueError('boom')",
        "retry": False,
    }
    enqueue = Calls.enqueue(
        "jobs",
        {"x": 1},
        priority=5,
        delay=0,
        run_at=NOW,
        max_attempts=2,
        dedupe_key="k",
        now=None,
    )
    assert enqueue.body == {
        "priority": 5,
        "delay": 0,
        "run_at": NOW.isoformat(),
        "max_attempts": 2,
        "dedupe_key": "k",
        "payload": {"x": 1},
    }
    done = Calls.complete_and_claim(
        [LEASE, (LEASE, {"ok": True})], "jobs", worker=None, lease_seconds=30, limit=0, now=None
    )
    assert done.body["done"][1]["result"] == {"ok": True} and done.body["limit"] == 0
    assert "worker" not in done.body


def test_only_calls_whose_repeat_changes_nothing_are_marked_idempotent() -> None:
    repeatable: list[Call[Any]] = [
        Calls.heartbeat(LEASE, extend=None, now=None),
        Calls.complete(LEASE, result=None, now=None),
        Calls.release(LEASE, delay=0, now=None),
        Calls.fail(LEASE, "x", retry=True, now=None),
        Calls.get(7),
        Calls.history(7, limit=10, start=0, newest_first=False),
        Calls.items("jobs", Status.QUEUED, limit=10, after=None),
        Calls.queues(),
        Calls.stats("jobs", now=None),
    ]
    once: list[Call[Any]] = [
        Calls.enqueue(
            "jobs",
            1,
            priority=0,
            delay=0,
            run_at=None,
            max_attempts=None,
            dedupe_key="k",
            now=None,
        ),
        Calls.enqueue_many(
            "jobs", [1], priority=0, delay=0, run_at=None, max_attempts=None, now=None
        ),
        Calls.claim("jobs", worker=None, lease_seconds=30, limit=1, wait=0, now=None),
        Calls.complete_and_claim([], "jobs", worker=None, lease_seconds=30, limit=1, now=None),
        Calls.cancel(7, now=None),
        Calls.requeue(7, max_attempts=None, now=None),
        Calls.purge("jobs", older_than=0, now=None),
    ]
    assert all(call.idempotent for call in repeatable)
    assert not any(call.idempotent for call in once)


# -- reading answers -------------------------------------------------------------------------
def test_answers_become_models() -> None:
    claimed = Calls.claim("jobs", worker=None, lease_seconds=30, limit=1, wait=0, now=None)
    assert claimed.parse(httpx.Response(200, json={"leases": [LEASE_JSON]})) == [LEASE]
    assert claimed.parse(httpx.Response(204)) == []
    item = Calls.get(7).parse(httpx.Response(200, json=ITEM_JSON))
    assert (item.status, item.expires_at, item.run_at) == (Status.CLAIMED, None, NOW)
    event = {
        "item_id": 7,
        "kind": "claimed",
        "at": NOW.isoformat(),
        "attempt": 1,
        "status": "claimed",
        "token": 42,
        "worker": "w-1",
        "error": None,
    }
    history = Calls.history(7, limit=10, start=0, newest_first=False)
    [parsed] = history.parse(httpx.Response(200, json={"events": [event]}))
    assert (parsed.kind, parsed.at) == (EventKind.CLAIMED, NOW)
    counts = {"queued": 1, "claimed": 2, "done": 3, "dead": 4, "cancelled": 5, "expired": 6}
    stats = Calls.stats("jobs", now=None).parse(
        httpx.Response(200, json={"queue": "jobs", **counts})
    )
    assert (stats.queue, stats.done, stats.expired) == ("jobs", 3, 6)
    beat = Calls.heartbeat(LEASE, extend=60, now=None)
    later = datetime(2026, 1, 2, 3, 5, 5, tzinfo=UTC)
    assert beat.parse(httpx.Response(200, json={"expires_at": later.isoformat()})).expires_at == (
        later
    )
    failed = Calls.fail(LEASE, "x", retry=False, now=None)
    assert failed.parse(httpx.Response(200, json={"status": "dead"})) == (Status.DEAD, None)
    queued = {"status": "queued", "retry_delay": 2.5}
    assert failed.parse(httpx.Response(200, json=queued)) == (Status.QUEUED, 2.5)


def test_complete_and_claim_reads_which_finished_leases_were_refused() -> None:
    other = dataclasses.replace(LEASE, id=8, token=43)
    call = Calls.complete_and_claim(
        [LEASE, other], "jobs", worker=None, lease_seconds=30, limit=1, now=None
    )
    lost, leases = call.parse(
        httpx.Response(200, json={"lost": [{"id": 8, "token": 43}], "leases": [LEASE_JSON]})
    )
    assert (lost, leases) == ([other], [LEASE])


@pytest.mark.parametrize(
    ("call", "answer", "error", "text"),
    [
        ("lease", problem(409, "lease-lost", "lease lost: expired"), LeaseLost, "expired"),
        ("lease", problem(409), LeaseLost, ""),
        ("item", problem(404, "item-not-found"), ItemNotFound, "7"),
        ("item", problem(404), ItemNotFound, "7"),
        ("plain", problem(404, "not-found"), ConfigError, "is this a workclaim server"),
        ("item", problem(409, "invalid-state", "not dead"), InvalidState, "not dead"),
        ("plain", problem(409), InvalidState, "HTTP 409"),
        ("plain", problem(413, "payload-too-large", "too big"), PayloadTooLarge, "too big"),
        ("plain", problem(400, "bad-request", "bad"), ValidationError, "bad"),
        ("plain", problem(422, "validation-error", "no"), ValidationError, "no"),
        ("plain", problem(401, "unauthorized", "who"), AccessDenied, "who"),
        ("plain", problem(403, "forbidden", "scope"), AccessDenied, "scope"),
        ("plain", problem(429, "too-many-requests", "slow"), BackendUnavailable, "HTTP 429"),
        ("plain", problem(503, "service-unavailable"), BackendUnavailable, "retry later"),
        ("plain", problem(500, "internal-error"), BackendError, "HTTP 500"),
        ("plain", httpx.Response(502, text="<html>"), BackendError, "HTTP 502"),
        ("plain", httpx.Response(500, json=[1, 2]), BackendError, "HTTP 500"),
    ],
)
def test_problems_become_the_library_errors(
    call: str, answer: httpx.Response, error: type[Exception], text: str
) -> None:
    calls: dict[str, Call[Any]] = {
        "lease": Calls.complete(LEASE, result=None, now=None),
        "item": Calls.requeue(7, max_attempts=None, now=None),
        "plain": Calls.queues(),
    }
    raised = error_for(calls[call], answer)
    assert type(raised) is error and text in str(raised)
    if isinstance(raised, AccessDenied):
        assert raised.status == answer.status_code
    if isinstance(raised, LeaseLost):
        assert (raised.item_id, raised.token) == (7, 42)


# -- deciding retries ------------------------------------------------------------------------
NOT_SENT = [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("full")]
LOST = [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.ReadError("rst")]


@pytest.mark.parametrize("idempotent", [True, False])
def test_the_retry_decision_table(idempotent: bool) -> None:
    call = Call("POST", "/x", lambda r: None, idempotent=idempotent)
    for exc in NOT_SENT:  # nothing reached the server: always safe
        assert should_retry(call, exc, None)
    for exc in LOST:  # it may have acted: only a repeat that changes nothing
        assert should_retry(call, exc, None) is idempotent
    assert not should_retry(call, httpx.DecodingError("bad gzip"), None)
    assert should_retry(call, None, problem(429))  # refused before doing anything
    for status in (502, 503, 504):
        assert should_retry(call, None, problem(status)) is idempotent
    for status in (400, 401, 403, 404, 409, 413, 422, 500):
        assert not should_retry(call, None, problem(status))


def test_the_pause_is_the_servers_hint_or_jittered_backoff() -> None:
    assert retry_after(None) is None
    assert retry_after(problem(429, **{"Retry-After": "2"})) == 2.0
    assert retry_after(problem(429, **{"Retry-After": "60"})) == 5.0
    assert retry_after(problem(429, **{"Retry-After": "soon"})) is None
    policy = options(backoff=0.1)
    assert policy.pause(0, problem(503, **{"Retry-After": "1"})) == 1.0
    for attempt, cap in [(0, 0.1), (1, 0.2), (2, 0.4), (10, 2.0)]:
        for _ in range(20):
            assert cap / 2 <= policy.pause(attempt, None) <= cap


def test_exchange_retries_an_idempotent_call_then_returns_its_answer() -> None:
    call = Calls.complete(LEASE, result=None, now=None)
    answers: list[Answer] = [httpx.ReadTimeout("slow"), problem(503), httpx.Response(204)]
    result, steps = drive(exchange(options(backoff=0.01), call), answers)
    assert result is None
    assert [type(s) for s in steps] == [Send, float, Send, float, Send]
    assert steps[0] is steps[2] is steps[4]  # the same request, built once


def test_exchange_never_repeats_a_call_that_could_act_twice() -> None:
    call = Calls.claim("jobs", worker=None, lease_seconds=30, limit=1, wait=0, now=None)
    lost = httpx.RemoteProtocolError("dropped")
    with pytest.raises(BackendUnavailable, match="did not answer") as raised:
        drive(exchange(options(), call), [lost])
    assert raised.value.__cause__ is lost
    with pytest.raises(BackendUnavailable, match="HTTP 503"):
        drive(exchange(options(), call), [problem(503)])


def test_exchange_gives_up_after_the_configured_retries() -> None:
    call = Calls.queues()
    answers: list[Answer] = [httpx.ConnectError("refused")] * 3
    with pytest.raises(BackendUnavailable, match="ConnectError"):
        drive(exchange(options(retries=2, backoff=0.01), call), answers)
    assert answers == []  # three tries: the first and two retries
    with pytest.raises(AccessDenied):
        drive(exchange(options(), call), [problem(403, "forbidden")])


# -- the claim re-poll -----------------------------------------------------------------------
def test_the_claim_re_poll_decision() -> None:
    assert claim_pause(True, 0.0, 20.0, 1.0) is None  # leases: return them
    assert claim_pause(False, 0.0, 20.0, 19.995) is None  # the wait is over
    assert claim_pause(False, 0.0, 20.0, 10.0) == 0.0  # the server capped the wait: ask again
    assert claim_pause(False, 10.0, 20.0, 10.0 + SHORT_204 / 2) == 0.5  # no wait: do not spin
    assert claim_pause(False, 19.8, 20.0, 19.8 + SHORT_204 / 2) == pytest.approx(0.175)


def test_an_empty_claim_is_asked_again_with_the_wait_left(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 100.0, 105.0, 105.0, 105.0, 120.0])  # the server caps waits at 5 s
    monkeypatch.setattr(_api, "monotonic", lambda: next(clock))
    plan = _api.claim(options(), "jobs", wait=20.0)
    result, steps = drive(plan, [httpx.Response(204), httpx.Response(200, json={"leases": []})])
    assert result == []
    first, second = steps
    assert isinstance(first, Send) and isinstance(second, Send)
    assert (body(first)["wait"], body(second)["wait"]) == (20.0, 15.0)
    assert second.options["timeout"].read == 25.0


def test_an_empty_enqueue_many_sends_nothing() -> None:
    assert drive(_api.enqueue_many(options(), "jobs", []), []) == ([], [])


# -- the two transports ----------------------------------------------------------------------
def test_each_method_is_defined_once_with_the_same_signature_on_both_clients() -> None:
    table = {n: v for n, v in vars(_api.Methods).items() if isinstance(v, _api.Method)}
    assert len(table) == 27  # 22, and the five schedule verbs
    names = list(table)
    assert all(table[name].plan is getattr(_api, name) for name in names)
    for name in names:
        sync, coroutine = getattr(Client, name), getattr(AsyncClient, name)
        assert inspect.signature(sync) == inspect.signature(coroutine)
        assert sync.__doc__ == coroutine.__doc__ == getattr(_api, name).__doc__
        assert inspect.iscoroutinefunction(coroutine) and not inspect.iscoroutinefunction(sync)
        assert next(iter(inspect.signature(sync).parameters)) == "self"


def test_both_clients_run_a_plan_over_a_transport() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"leases": [LEASE_JSON]})

    with Client("http://h", token="t", transport=httpx.MockTransport(answer)) as client:
        assert client.claim("jobs", limit=2, now=NOW) == [LEASE]

    async def run(go: Callable[[AsyncClient], Any]) -> Any:
        async with AsyncClient("http://h", transport=httpx.MockTransport(answer)) as client:
            return await go(client)

    import asyncio

    assert asyncio.run(run(lambda c: c.claim("jobs", limit=2))) == [LEASE]
    assert seen[0].headers["Authorization"] == "Bearer t"
    assert seen[0].headers[CLOCK_HEADER] == NOW.isoformat()
    assert "Authorization" not in seen[1].headers
    assert Client.__module__ == AsyncClient.__module__ == AccessDenied.__module__
    assert AccessDenied.__module__ == "workclaim.client"
