"""What a worker tells its user when a handler fails: the text log line of each failure (error,
attempt, retry delay) over a `Queue` and over HTTP, the stored traceback from the handler's
frame down, and a handler written for the payload instead of the Context."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.http_transport import running_server, server_config
from workclaim import Queue, Settings, Status, ValidationError, logs
from workclaim.client import Client
from workclaim.retry import Backoff
from workclaim.server import create_app
from workclaim.worker import Context, Worker

SETTINGS = Settings(backoff=Backoff(base=0.5, jitter=0))


@contextmanager
def source(kind: str, url: str) -> Iterator[Any]:
    """A Queue, or a Client on a live server over the same store (both with SETTINGS)."""
    if kind == "queue":
        with Queue(url, settings=SETTINGS) as q:
            yield q
        return
    app = create_app(url, server_config(SETTINGS))
    with running_server(app) as base, Client(base) as client:
        yield client


@contextmanager
def text_log(logger: logging.Logger, level: int = logging.INFO) -> Iterator[io.StringIO]:
    """Everything `logger` writes at `level` and up, formatted as the CLI's text lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.TextFormatter())
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def work_until_dead(
    kind: str, url: str, handler: Callable[[Context], Any], attempts: int = 2
) -> None:
    """Run `handler` over one new item until the item is dead (each attempt fails)."""
    with Queue(url) as q:
        item_id = q.enqueue("jobs", {"to": "a@example.org"}, max_attempts=attempts)
        with source(kind, url) as src:
            worker = Worker(src, queues="jobs", wait=0.2)
            worker.handler(handler)
            thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
            thread.start()
            try:
                deadline = time.monotonic() + 30
                while q.get(item_id).status is not Status.DEAD:
                    assert time.monotonic() < deadline, "the item never died"
                    time.sleep(0.02)
            finally:
                worker.stop()
                thread.join(30)


def boom(ctx: Context) -> None:
    raise ValueError(f"boom on attempt {ctx.attempt}")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", ["queue", "http"])
def test_every_failure_logs_its_error_attempt_and_retry_delay(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with text_log(logs.EVENTS) as out:
        work_until_dead(kind, url, boom)
    # The worker's own lines (an in-process server also logs, with no queue on its leases).
    lines = [ln for ln in out.getvalue().splitlines() if " fail " in ln and "queue=jobs" in ln]
    assert len(lines) == 2, out.getvalue()
    first, last = lines
    assert "outcome=queued" in first and "attempt=1/2" in first
    [delay] = re.findall(r" retry_delay=([0-9.]+)", first)
    if kind == "queue":  # the backoff's delay; over HTTP the server reads it back from run_at
        assert float(delay) == 0.5
    assert 0 <= float(delay) <= 0.5
    assert 'error="ValueError: boom on attempt 1"' in first
    assert "outcome=dead" in last and "attempt=2/2" in last
    assert "retry_delay" not in last
    assert 'error="ValueError: boom on attempt 2"' in last


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["queue", "http"])
def test_stored_tracebacks_start_at_the_handler(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"

    async def aboom(ctx: Context) -> None:
        raise ValueError("async boom")

    for handler in (boom, aboom):
        work_until_dead(kind, url, handler, attempts=1)
    with Queue(url) as q:
        errors = [item.last_error or "" for item in q.items("jobs", "dead")]
    assert len(errors) == 2
    for error in errors:
        head, _, trace = error.partition("\n")
        assert head.startswith("ValueError: ") and trace.startswith("Traceback"), error
        frames = [line for line in trace.splitlines() if line.startswith("  File ")]
        assert frames[0].startswith(f'  File "{__file__}"'), error


def test_a_handler_that_cannot_take_a_context_is_refused(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}") as q:
        worker = Worker(q, queues="jobs")

        def send() -> None: ...

        def two(to: str, subject: str) -> None: ...

        for bad in (send, two):
            with pytest.raises(ValidationError, match=r"cannot be called as handler\(ctx\)"):
                worker.handler(bad)  # type: ignore[arg-type]
            with pytest.raises(ValidationError, match=r"ctx\.lease\.payload"):
                worker.run(bad, install_signals=False)  # type: ignore[arg-type]


@pytest.mark.timeout(60)
def test_a_celery_style_handler_is_told_what_it_got(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"

    def send(payload: Any) -> None:
        print(payload["to"])

    with text_log(logging.getLogger("workclaim"), logging.WARNING) as out:
        work_until_dead("queue", url, send, attempts=1)
    hint = "handler test_a_celery_style_handler_is_told_what_it_got.<locals>.send(payload) was"
    hint += " called with a Context: take `ctx` and read `ctx.lease.payload`"
    warnings = [line for line in out.getvalue().splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and hint in warnings[0], out.getvalue()
    with Queue(url) as q:
        [item] = q.items("jobs", "dead")
    assert item.last_error is not None
    assert item.last_error.startswith(hint), item.last_error
    assert "TypeError: 'Context' object is not subscriptable" in item.last_error
