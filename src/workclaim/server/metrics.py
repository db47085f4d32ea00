"""Prometheus metrics, one `CollectorRegistry` per app (so several apps can live in one process).

Item counts per queue and status are read from the store when `/metrics` is scraped, for the
queues this server has seen (at most `MAX_QUEUES`, so a client cannot grow the label set forever).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MAX_QUEUES = 200
_STATUSES = ("queued", "claimed", "done", "dead", "cancelled", "expired")


class Metrics:
    """The service's counters, histogram and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.claims = Counter("workclaim_claims", "Leases handed out", ["queue"], registry=r)
        self.completions = Counter("workclaim_completions", "Items completed", registry=r)
        self.failures = Counter("workclaim_failures", "Failures recorded", registry=r)
        self.releases = Counter("workclaim_releases", "Leases released", registry=r)
        self.lease_lost = Counter(
            "workclaim_lease_lost", "Calls refused because the lease was lost", registry=r
        )
        self.enqueued = Counter("workclaim_enqueued", "Items enqueued", ["queue"], registry=r)
        self.claim_latency = Histogram(
            "workclaim_claim_seconds",
            "Time to answer a claim that did not wait (store round trip included)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.longpolls = Gauge(
            "workclaim_longpolls_waiting", "Long-poll claims waiting now", registry=r
        )
        self.items = Gauge(
            "workclaim_items", "Items per queue and status", ["queue", "status"], registry=r
        )
        self.queues: set[str] = set()

    def saw_queue(self, queue: str) -> None:
        """Remember a queue so its item counts are exported (bounded)."""
        if queue not in self.queues and len(self.queues) < MAX_QUEUES:
            self.queues.add(queue)

    def set_counts(self, queue: str, counts: dict[str, int]) -> None:
        """Update the per-status gauges of one queue."""
        for status in _STATUSES:
            self.items.labels(queue=queue, status=status).set(counts.get(status, 0))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
