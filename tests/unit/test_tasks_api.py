"""The task API without a store: registration, options, argument checks, failure steering."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from workclaim import Backoff, ConfigError, Lease, ValidationError
from workclaim.tasks import REGISTRY, Handle, Registry, TaskHandler, connect, task
from workclaim.worker import Context, HandlerTimeout, Permanent, RetryAfter
from workclaim.worker._steering import Limits, failure_of, limits_for


def test_names_default_to_module_and_qualname_and_duplicates_are_refused() -> None:
    reg = Registry()

    @task(registry=reg)
    def send(to: str) -> None: ...

    assert send.name.startswith(f"{__name__}.test_names_default")
    assert send.name.endswith(".<locals>.send")
    task(registry=reg)(send.fn)  # the same function again: harmless (a module imported twice)

    def other(to: str) -> None: ...

    with pytest.raises(ConfigError, match="already registered"):
        task(registry=reg, name=send.name)(other)
    assert reg.names() == [send.name]


def test_options_change_a_copy_and_refuse_unknown_ones() -> None:
    reg = Registry()

    @task(queue="emails", registry=reg)
    def send(to: str) -> None: ...

    later = send.options(delay=30, priority=3)
    assert (later.defaults.delay, later.defaults.priority) == (30, 3)
    assert (send.defaults.delay, send.defaults.priority) == (0.0, 0)
    with pytest.raises(ValidationError, match="unknown task option"):
        send.options(dely=30)
    with pytest.raises(ValidationError, match="invalid queue name"):
        send.options(queue="no spaces")


def test_arguments_must_fit_the_signature_and_ctx_is_never_enqueued() -> None:
    reg = Registry()

    @task(registry=reg)
    def charge(cents: int, ctx: Context) -> None: ...

    assert charge.payload((5,), {}) == {"task": charge.name, "args": [5], "kwargs": {}}
    with pytest.raises(ValidationError, match="unexpected keyword argument 'nope'"):
        charge.payload((5,), {"nope": 1})
    with pytest.raises(ValidationError, match="given by the worker"):
        charge.payload((5,), {"ctx": 1})


def test_enqueue_without_a_connected_queue_says_how_to_connect() -> None:
    reg = Registry()

    @task(registry=reg)
    def f() -> None: ...

    connect(None)
    with pytest.raises(ConfigError, match=r"tasks\.connect"):
        f.enqueue()


def test_failures_steer_retries() -> None:
    backoff = Backoff(base=2.0, factor=3.0, cap=100.0, jitter=0.0)
    dead = failure_of(Permanent("bad address"), attempt=1)
    assert (dead.retry, dead.error.splitlines()[0]) == (False, "Permanent: bad address")
    later = failure_of(RetryAfter(42, "throttled"), attempt=1, backoff=backoff)
    assert (later.retry, later.retry_delay) == (True, 42.0)
    plain = failure_of(ValueError("x"), attempt=3, backoff=backoff)
    assert (plain.retry, plain.retry_delay) == (True, 18.0)
    assert failure_of(HandlerTimeout("slow"), attempt=1).retry_delay is None  # the store's
    assert backoff.delay(3, random.Random(1)) == 18.0


@pytest.mark.parametrize("seconds", [-1, float("nan"), True, "5", 367 * 86_400])
def test_retry_after_refuses_bad_delays(seconds: object) -> None:
    with pytest.raises(ValueError, match="RetryAfter needs"):
        RetryAfter(seconds)  # type: ignore[arg-type]


def test_each_task_brings_its_own_limits() -> None:
    reg = Registry()
    backoff = Backoff(base=1.0, jitter=0.0)

    @task(registry=reg, timeout=5, backoff=backoff)
    def slow() -> None: ...

    @task(registry=reg, timeout=5)
    async def slow_async() -> None: ...

    handler, default = TaskHandler(reg), Limits(timeout=99)

    def limits(payload: object) -> Limits:
        lease = Lease(1, "default", payload, 1, 1, 5, datetime.now(UTC), "w", 30.0)
        return limits_for(handler, lease, default)

    assert limits(slow.payload((), {})) == Limits(timeout=5, backoff=backoff)
    assert limits(slow_async.payload((), {})) == Limits(timeout=None)  # cancelled in the call
    assert limits({"not": "a task"}) == default
    assert limits({"task": "gone", "args": [], "kwargs": {}}) == default


def test_types_follow_the_function() -> None:
    """Checked by mypy (`make lint`): an async task's result is what its coroutine returns, and
    a leading `ctx` is not part of `enqueue`."""
    reg = Registry()

    @task(registry=reg)
    def plain(a: int, b: str = "") -> int:
        return a

    @task(registry=reg)
    async def coro(ctx: Context, a: int) -> str:
        return str(a)

    @task
    def bare(ctx: Context) -> bool:
        return True

    REGISTRY.remove(bare.name)

    def typed_only() -> None:  # never run: mypy checks these calls and results
        sent: Handle[int] = plain.enqueue(1, b="x")
        text: Handle[str] = coro.enqueue(1)
        flag: Handle[bool] = bare.enqueue()
        print(sent, text, flag)

    assert (plain.wants_context, coro.wants_context, bare.wants_context) == (False, True, True)
