"""An OpenTelemetry scenario in a process of its own, printing what was recorded as JSON.

OpenTelemetry's global providers can be set once per process, and workclaim decides whether to
record when a `Queue` or `Worker` is made, so each scenario runs here, in a fresh interpreter,
and the test reads its output:

    python -m tests.support.otel_scenario traced STORE_URL TRANSPORT   # SDK set up
    python -m tests.support.otel_scenario bare STORE_URL TRANSPORT     # no provider
    python -m tests.support.otel_scenario no-extra STORE_URL TRANSPORT # opentelemetry hidden

The scenario: a "web request" span enqueues a task (`greet`); a worker runs it, one plain
`Queue.enqueue` item (completed) and one that raises (dead); then it prints the spans, the metric
points and the stored task payload.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

QUEUE = "otel"


def _setup(mode: str) -> Any:
    """The SDK's in-memory exporter and metric reader for `traced`; nothing otherwise."""
    if mode == "no-extra":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails
        return None
    if mode == "bare":
        return None
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return exporter, reader


def _spans(exporter: Any) -> list[dict[str, Any]]:
    out = []
    for span in exporter.get_finished_spans():
        ctx = span.get_span_context()
        out.append(
            {
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": f"{ctx.trace_id:032x}",
                "span_id": f"{ctx.span_id:016x}",
                "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
                "scope": span.instrumentation_scope.name,
                "attributes": dict(span.attributes or {}),
                "status": span.status.status_code.name,
            }
        )
    return out


def _metrics(reader: Any) -> list[dict[str, Any]]:
    out = []
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:  # a histogram point
                        value = {"count": point.count, "sum": point.sum}
                    out.append(
                        {"name": metric.name, "attributes": dict(point.attributes), "value": value}
                    )
    return out


async def _aenqueue(greet: Any, url: str) -> int:
    """`greet.aenqueue` through a connected `AsyncQueue` on the same store; the item's id."""
    from workclaim import AsyncQueue
    from workclaim.tasks import connect

    async with AsyncQueue(url) as queue:
        connect(queue)
        try:
            handle = await greet.aenqueue("bob")
        finally:
            connect(None)
        return int(handle.id)


def main(mode: str, url: str, transport: str) -> None:
    recorded = _setup(mode)
    from tests.support.transports import TRANSPORTS
    from workclaim import Settings
    from workclaim.tasks import Registry, TaskHandler, task
    from workclaim.worker import Context, Worker

    registry = Registry()

    @task(queue=QUEUE, registry=registry, name="greet")
    def greet(name: str) -> str:
        return f"hello {name}"

    class Handle(TaskHandler):
        """Task items through the task handler, plain ones answered here."""

        def __call__(self, ctx: Context) -> Any:
            if isinstance(ctx.lease.payload, dict) and "task" in ctx.lease.payload:
                return super().__call__(ctx)
            if ctx.lease.payload.get("boom"):
                raise RuntimeError("boom")
            return "plain"

    handle = Handle(registry)

    report: dict[str, Any] = {}
    with TRANSPORTS[transport](url, Settings()) as source:
        if recorded is not None:
            from opentelemetry import trace
            from opentelemetry.trace import SpanKind

            web = trace.get_tracer("tests.web")
            with web.start_as_current_span("GET /signup", kind=SpanKind.SERVER):
                task_handle = greet.enqueue_on(source, "ada")
            if transport == "direct":  # and from async code, in a second request
                with web.start_as_current_span("GET /async", kind=SpanKind.SERVER):
                    report["async_task_id"] = asyncio.run(_aenqueue(greet, url))
        else:
            task_handle = greet.enqueue_on(source, "ada")
        plain_id = source.enqueue(QUEUE, {"n": 1})
        boom_id = source.enqueue(QUEUE, {"boom": 1}, max_attempts=1)
        worker = Worker(source, queues=[QUEUE], concurrency=1, wait=0.2)
        thread = threading.Thread(
            target=worker.run, kwargs={"fn": handle, "install_signals": False}
        )
        thread.start()
        try:
            report["result"] = task_handle.result(timeout=60)
            want = {plain_id: "done", boom_id: "dead", report.get("async_task_id"): "done"}
            want.pop(None, None)
            for _ in range(600):
                if all(source.get(i).status.value == v for i, v in want.items() if i):
                    break
                threading.Event().wait(0.05)
        finally:
            worker.stop()
            thread.join(30)
        report["plain_status"] = source.get(plain_id).status.value
        report["task_payload"] = source.get(task_handle.id).payload
        report["task_id"] = task_handle.id
        report["plain_id"] = plain_id
        report["boom_id"] = boom_id
        report["boom_status"] = source.get(boom_id).status.value
        report["worker_traced"] = worker._run_handler != worker._call
        report["queue_instrumented"] = getattr(source, "_otel", None) is not None
        if recorded is not None:
            exporter, reader = recorded
            report["metrics"] = _metrics(reader)  # while the store is open (the depth gauge)
            report["spans"] = _spans(exporter)
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])
