"""OpenTelemetry: a trace that starts in a web request, enqueues a task and ends in the worker's
handler span is one trace, on every backend, directly and over HTTP; the metrics appear; and
without a provider, or without the package, nothing is recorded and nothing fails.

Each scenario runs in its own interpreter (`tests/support/otel_scenario.py`): OpenTelemetry's
global providers are set once per process, and workclaim decides when a Queue or Worker is made.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.missing import require
from tests.support.transports import TRANSPORTS

ROOT = Path(__file__).resolve().parents[2]


def scenario(mode: str, url: str, transport: str) -> dict[str, Any]:
    """Run the scenario in a fresh interpreter and return its report."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.otel_scenario", mode, url, transport],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _one(spans: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    """The one span whose fields (and `attributes`' entries) match."""
    attrs = match.pop("attributes", {})
    found = [
        s
        for s in spans
        if all(s[k] == v for k, v in match.items())
        and all(s["attributes"].get(k) == v for k, v in attrs.items())
    ]
    assert len(found) == 1, (match, attrs, spans)
    return found[0]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_web_request_its_task_and_the_handler_are_one_trace(
    store_url: str, transport: str
) -> None:
    require("opentelemetry.sdk", "the OpenTelemetry tests need the SDK (the dev extra)")
    report = scenario("traced", store_url, transport)
    assert report["result"] == "hello ada" and report["plain_status"] == "done"
    assert report["boom_status"] == "dead"
    spans, task_id = report["spans"], str(report["task_id"])

    web = _one(spans, name="GET /signup", parent_id=None)
    create = _one(spans, name="create otel", attributes={"messaging.message.id": task_id})
    process = _one(spans, kind="CONSUMER", attributes={"messaging.message.id": task_id})
    # One trace: web request -> create (the task's enqueue) -> process (the worker's handler).
    assert create["trace_id"] == web["trace_id"] and create["parent_id"] == web["span_id"]
    assert process["trace_id"] == web["trace_id"] and process["parent_id"] == create["span_id"]
    assert create["attributes"]["messaging.message.id"] == task_id
    assert process["attributes"] == {
        "messaging.system": "workclaim",
        "messaging.operation.type": "process",
        "messaging.operation.name": "handle",
        "messaging.destination.name": "otel",
        "messaging.message.id": task_id,
        "workclaim.token": 1,
        "workclaim.attempt": 1,
    }
    # The context the item carried is the create span's (W3C traceparent in the envelope).
    traceparent = report["task_payload"]["trace"]["traceparent"]
    assert traceparent.split("-")[1:3] == [web["trace_id"], create["span_id"]]

    # From async code (`aenqueue` on a connected AsyncQueue; direct only), the same chain.
    extra = 0
    if transport == "direct":
        extra, async_id = 1, str(report["async_task_id"])
        request = _one(spans, name="GET /async", parent_id=None)
        made = _one(spans, name="create otel", attributes={"messaging.message.id": async_id})
        ran = _one(spans, kind="CONSUMER", attributes={"messaging.message.id": async_id})
        assert made["trace_id"] == ran["trace_id"] == request["trace_id"] != web["trace_id"]
        assert (made["parent_id"], ran["parent_id"]) == (request["span_id"], made["span_id"])
        # AsyncQueue's thread runs the store call in the caller's context: `send` under `create`.
        sent = _one(spans, name="send otel", attributes={"messaging.message.id": async_id})
        assert sent["parent_id"] == made["span_id"]

    # A plain payload is not rewritten: its handler span starts a trace of its own.
    plain = _one(
        spans, kind="CONSUMER", attributes={"messaging.message.id": str(report["plain_id"])}
    )
    assert plain["trace_id"] != web["trace_id"] and plain["parent_id"] is None

    # The store's side (the Queue's verbs; over HTTP, the server's): the enqueue under the
    # create span when the Queue is in this trace, and a receive span for what was claimed.
    sends = [s for s in spans if s["name"] == "send otel"]
    boom_id = str(report["boom_id"])
    assert {s["attributes"]["messaging.message.id"] for s in sends} == {
        task_id,
        str(report["plain_id"]),
        boom_id,
        *([str(report["async_task_id"])] if extra else []),
    }
    if transport == "direct":
        assert (
            _one(sends, attributes={"messaging.message.id": task_id})["parent_id"]
            == create["span_id"]
        )
    claimed = [s for s in spans if s["name"] == "receive otel"]
    assert sum(s["attributes"]["messaging.batch.message_count"] for s in claimed) == 3 + extra

    # A handler that raised: its span says so, and the failure is a settle span with its outcome.
    boom = _one(spans, kind="CONSUMER", attributes={"messaging.message.id": boom_id})
    assert boom["status"] == "ERROR"
    failed = _one(
        spans,
        attributes={"messaging.message.id": boom_id, "messaging.operation.name": "fail"},
    )
    assert failed["attributes"]["messaging.operation.type"] == "settle"
    assert failed["attributes"]["workclaim.outcome"] == "dead"

    points = {
        (m["name"], m["attributes"].get("workclaim.status")): m["value"] for m in report["metrics"]
    }
    assert points[("workclaim.items.enqueued", None)] == 3 + extra
    assert points[("workclaim.items.claimed", None)] == 3 + extra
    assert points[("workclaim.items.completed", None)] == 2 + extra
    assert points[("workclaim.items.failed", None)] == 1
    assert points[("workclaim.queue.depth", "queued")] == 0
    assert points[("workclaim.queue.depth", "claimed")] == 0
    durations = [m["value"] for m in report["metrics"] if m["name"] == "workclaim.claim.duration"]
    assert sum(d["count"] for d in durations) >= 1


@pytest.mark.timeout(180)
# Without the package only directly: FastAPI (the `server` extra) itself imports the API.
@pytest.mark.parametrize(
    ("mode", "transport"), [("bare", "direct"), ("bare", "http"), ("no-extra", "direct")]
)
@pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)
def test_nothing_is_recorded_and_nothing_fails_without_a_provider(
    store_url: str, transport: str, mode: str
) -> None:
    report = scenario(mode, store_url, transport)
    assert report["result"] == "hello ada" and report["plain_status"] == "done"
    assert report["boom_status"] == "dead"
    assert "trace" not in report["task_payload"]  # nothing injected
    assert report["worker_traced"] is False  # the handler is called as it is
    assert report["queue_instrumented"] is False  # the verbs call `logged` itself
