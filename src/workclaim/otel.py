"""OpenTelemetry traces and metrics for `Queue` verbs, task enqueues and the worker's handler runs.

Optional (`pip install workclaim[otel]`, the API only; the application brings the SDK and its
exporters). Whether anything is recorded is decided once, where a `Queue` or `Worker` is made
(`instrument`, `handler_tracing`): without the package, or with no tracer and no meter provider
configured, they return None and the caller keeps its plain path, so the hot path never asks
again. Configure the SDK before you open queues and start workers.

Spans follow the messaging semantic conventions (`messaging.system="workclaim"`,
`messaging.destination.name` = the queue, `messaging.message.id` = the item id,
`messaging.operation.type` = create / send / receive / process / settle). A task's trace context
travels in its envelope's `trace` field (W3C `traceparent`), injected by `task_enqueue` and
extracted in the worker before its handler span; plain payloads are never rewritten (see
docs/decisions.md). Metrics: `workclaim.claim.duration` (histogram, s), `workclaim.items.enqueued`
/ `.claimed` / `.completed` / `.failed` (counters), `workclaim.queue.depth` (observable gauge).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from workclaim.models import Lease, QueueStats, Status

try:  # once, at import: the extra is optional
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import Span, SpanKind
except ImportError:  # pragma: no cover - exercised by the no-extra subprocess test
    trace = None  # type: ignore[assignment]

SYSTEM = "workclaim"
SCOPE = "workclaim"
MAX_DEPTH_QUEUES = 100  # queues a Queue reports in the depth gauge (bounded, like Prometheus)
_BASE = {"messaging.system": SYSTEM}
_METRIC_KEYS = frozenset({"messaging.system", "messaging.destination.name"})


def _configured(provider: object) -> bool:
    """An application's provider (an SDK's), not one of the API's own proxy or no-op ones."""
    return not type(provider).__module__.startswith(
        ("opentelemetry.trace", "opentelemetry.metrics")
    )


def _tracer_configured() -> bool:
    """True when the application set a tracer provider."""
    return trace is not None and _configured(trace.get_tracer_provider())


def _meter_configured() -> bool:
    """True when the application set a meter provider."""
    return trace is not None and _configured(metrics.get_meter_provider())


# -- metrics: one set of instruments per process, made on first use ----------------------------
class _Instruments:
    """The process's instruments and the queues whose depth the gauge reports."""

    def __init__(self) -> None:
        meter = metrics.get_meter(SCOPE)
        self.claim_duration = meter.create_histogram(
            "workclaim.claim.duration",
            unit="s",
            description="Time a claim (or complete_and_claim) call took, store round trip included",
        )
        self.enqueued = meter.create_counter("workclaim.items.enqueued", description="Items stored")
        self.claimed = meter.create_counter("workclaim.items.claimed", description="Leases taken")
        self.completed = meter.create_counter("workclaim.items.completed", description="Completed")
        self.failed = meter.create_counter(
            "workclaim.items.failed", description="Failures recorded (outcome: queued or dead)"
        )
        self.watched: weakref.WeakSet[Instrumentation] = weakref.WeakSet()
        meter.create_observable_gauge(
            "workclaim.queue.depth",
            callbacks=[self._depth],
            description="Items queued and claimed per queue (read at collection, one stats call "
            "per queue this process used)",
        )

    def _depth(self, options: CallbackOptions) -> Iterator[Observation]:
        for watched in list(self.watched):
            yield from watched.depth()


_instruments: _Instruments | None = None
_instruments_lock = threading.Lock()


def _get_instruments() -> _Instruments:
    global _instruments
    with _instruments_lock:
        if _instruments is None:
            _instruments = _Instruments()
        return _instruments


def _count(counter: Any, leases: Sequence[Lease]) -> None:
    """Add one per lease, attributed to its queue (one `add` per queue in the batch)."""
    per: dict[str, int] = {}
    for lease in leases:
        per[lease.queue] = per.get(lease.queue, 0) + 1
    for queue, n in per.items():  # a lease rebuilt from id and token names no queue
        counter.add(n, {**_BASE, "messaging.destination.name": queue} if queue else _BASE)


def _lease_attributes(operation: str, kind: str, lease: Lease) -> dict[str, Any]:
    """A span's attributes for one lease (a lease rebuilt from id and token, as the HTTP
    service's settle calls are, names no queue: then the destination is left out)."""
    out = {
        **_BASE,
        "messaging.operation.type": kind,
        "messaging.operation.name": operation,
        "messaging.message.id": str(lease.id),
        "workclaim.token": lease.token,
        "workclaim.attempt": lease.attempt,
    }
    if lease.queue:
        out["messaging.destination.name"] = lease.queue
    return out


def _batch_attributes(operation: str, kind: str, leases: Sequence[Lease]) -> dict[str, Any]:
    out: dict[str, Any] = {
        **_BASE,
        "messaging.operation.type": kind,
        "messaging.operation.name": operation,
        "messaging.batch.message_count": len(leases),
    }
    queues = {lease.queue for lease in leases}
    if len(queues) == 1:
        out["messaging.destination.name"] = queues.pop()
    if len(leases) == 1:
        out["messaging.message.id"] = str(leases[0].id)
    return out


# -- the Queue's verbs ------------------------------------------------------------------------
class Instrumentation:
    """One `Queue`'s spans and metrics: `wrap(logged)` is what its verbs call instead of
    `logged` (same signature); verbs without spans pass straight through."""

    def __init__(self, stats: Callable[[str], QueueStats], tracing: bool, metering: bool) -> None:
        self.tracer = trace.get_tracer(SCOPE) if tracing else None
        self.instruments = _get_instruments() if metering else None
        self._stats = stats
        self._queues: set[str] = set()
        if self.instruments is not None:
            self.instruments.watched.add(self)
        self._by_verb: dict[str, Callable[..., Any]] = {
            "enqueue": self._enqueue,
            "claim": self._claim,
            "complete_and_claim": self._complete_and_claim,
            "complete": self._settle,
            "fail": self._settle,
            "release": self._settle,
        }

    def close(self) -> None:
        """Stop reporting this queue's depth (its store is closed)."""
        if self.instruments is not None:
            self.instruments.watched.discard(self)

    def wrap(self, logged: Callable[..., Any]) -> Callable[..., Any]:
        """`logged`, with each verb's span and metrics around it."""
        by_verb = self._by_verb

        def traced(verb: Any, settings: Any, call: Any, /, *args: Any, **kwargs: Any) -> Any:
            around = by_verb.get(verb.name)
            if around is None:
                return logged(verb, settings, call, *args, **kwargs)
            return around(verb.name, lambda: logged(verb, settings, call, *args, **kwargs), args)

        return traced

    def _saw(self, queue: str) -> None:
        if queue not in self._queues and len(self._queues) < MAX_DEPTH_QUEUES:
            self._queues.add(queue)

    def depth(self) -> Iterator[Observation]:
        """The gauge's observations for this queue (a closed store reports nothing)."""
        for name in list(self._queues):
            try:
                stats = self._stats(name)
            except Exception:  # closed, or the store is away: skip this collection
                return
            attrs = {**_BASE, "messaging.destination.name": name}
            yield Observation(stats.queued, {**attrs, "workclaim.status": "queued"})
            yield Observation(stats.claimed, {**attrs, "workclaim.status": "claimed"})

    @contextmanager
    def _span(self, name: str, kind: SpanKind, attributes: dict[str, Any]) -> Iterator[Span | None]:
        if self.tracer is None:
            yield None
            return
        with self.tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
            yield span

    def _enqueue(self, operation: str, run: Callable[[], Any], args: tuple[Any, ...]) -> Any:
        queue, items = args[0], args[1]
        attrs = {
            **_BASE,
            "messaging.operation.type": "send",
            "messaging.operation.name": operation,
            "messaging.destination.name": queue,
        }
        if len(items) != 1:
            attrs["messaging.batch.message_count"] = len(items)
        with self._span(f"send {queue}", SpanKind.PRODUCER, attrs) as span:
            ids: list[int] = run()
            if span is not None and len(ids) == 1:
                span.set_attribute("messaging.message.id", str(ids[0]))
        if self.instruments is not None:
            self._saw(queue)
            self.instruments.enqueued.add(len(ids), {**_BASE, "messaging.destination.name": queue})
        return ids

    def _receive(
        self, operation: str, run: Callable[[], Any], leases_of: Callable[[Any], Any]
    ) -> Any:
        """A claim: timed; a span only when it took something (an empty poll is not news), made
        afterwards with the call's start time."""
        start_ns = time.time_ns()
        started = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - started
        leases: list[Lease] = leases_of(result)
        if self.instruments is not None:
            self.instruments.claim_duration.record(
                elapsed, {**_BASE, "messaging.operation.name": operation}
            )
            _count(self.instruments.claimed, leases)
            for lease in leases:
                self._saw(lease.queue)
        if self.tracer is not None and leases:
            attrs = _batch_attributes(operation, "receive", leases)
            dest = attrs.get("messaging.destination.name", "")
            span = self.tracer.start_span(
                f"receive {dest}".strip(),
                kind=SpanKind.CLIENT,
                attributes=attrs,
                start_time=start_ns,
            )
            span.end()
        return result

    def _claim(self, operation: str, run: Callable[[], Any], args: tuple[Any, ...]) -> Any:
        return self._receive(operation, run, lambda leases: leases)

    def _complete_and_claim(
        self, operation: str, run: Callable[[], Any], args: tuple[Any, ...]
    ) -> Any:
        pairs: list[tuple[Lease, Any]] = args[0]
        result = self._receive(operation, run, lambda r: r[1])
        if self.instruments is not None:
            flags: list[bool] = result[0]
            _count(
                self.instruments.completed, [p[0] for p, ok in zip(pairs, flags, strict=True) if ok]
            )
        return result

    def _settle(self, operation: str, run: Callable[[], Any], args: tuple[Any, ...]) -> Any:
        lease: Lease = args[0]
        attrs = _lease_attributes(operation, "settle", lease)
        name = f"{operation} {lease.queue}" if lease.queue else operation
        with self._span(name, SpanKind.CLIENT, attrs) as span:
            result = run()
            if span is not None and isinstance(result, Status):
                span.set_attribute("workclaim.outcome", result.value)
        if self.instruments is not None:
            where = {k: v for k, v in attrs.items() if k in _METRIC_KEYS}
            if operation == "complete":
                self.instruments.completed.add(1, where)
            elif operation == "fail":
                outcome = result.value if isinstance(result, Status) else "unknown"
                self.instruments.failed.add(1, {**where, "workclaim.outcome": outcome})
        return result


def instrument(stats: Callable[[str], QueueStats]) -> Instrumentation | None:
    """A `Queue`'s instrumentation, or None (nothing to record: no package, no provider)."""
    tracing, metering = _tracer_configured(), _meter_configured()
    if not (tracing or metering):
        return None
    return Instrumentation(stats, tracing, metering)


# -- tasks: the producer side -----------------------------------------------------------------
@contextmanager
def task_enqueue(queue: str, task: str) -> Iterator[Callable[[], dict[str, str] | None]]:
    """Around a task's enqueue: a PRODUCER `create` span, and a function giving the trace
    context to put in the envelope (None when nothing traces). The caller stores the item
    inside the block and reports its id with `created(id)`."""
    if not _tracer_configured():
        yield _no_carrier
        return
    tracer = trace.get_tracer(SCOPE)
    attrs = {
        **_BASE,
        "messaging.operation.type": "create",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": queue,
        "workclaim.task": task,
    }
    with tracer.start_as_current_span(f"create {queue}", kind=SpanKind.PRODUCER, attributes=attrs):
        yield _carrier


def created(item_ids: Sequence[int]) -> None:
    """Name the items a task enqueue stored on its `create` span (no-op without one)."""
    if trace is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        if len(item_ids) == 1:
            span.set_attribute("messaging.message.id", str(item_ids[0]))
        else:
            span.set_attribute("messaging.batch.message_count", len(item_ids))


def _no_carrier() -> None:
    return None


def _carrier() -> dict[str, str] | None:
    from opentelemetry import propagate  # here: its import loads the propagators (~0.1 s)

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


# -- the worker: the consumer side ------------------------------------------------------------
Call = Callable[[Any, float | None], Any]
TraceOf = Callable[[Lease], Mapping[str, str] | None]


def handler_tracing(call: Call, trace_of: TraceOf | None) -> Call:
    """The worker's handler call (`call(ctx, timeout)`), inside a CONSUMER `process` span when a
    tracer provider is configured (else `call` itself). `trace_of(lease)` gives the item's
    carried trace context (a task envelope's `trace`), which becomes the span's parent."""
    if not _tracer_configured():
        return call
    tracer = trace.get_tracer(SCOPE)
    from opentelemetry import propagate  # only once tracing is on (its import loads plugins)

    def traced(ctx: Any, timeout: float | None) -> Any:
        lease: Lease = ctx.lease
        carrier = trace_of(lease) if trace_of is not None else None
        parent = propagate.extract(carrier) if carrier else None
        attrs = _lease_attributes("handle", "process", lease)
        with tracer.start_as_current_span(
            f"process {lease.queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attrs
        ):  # an exception is recorded on the span, and its status set to ERROR
            return call(ctx, timeout)

    return traced
