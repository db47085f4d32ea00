"""What the dashboard charts: items/s per queue from periodic stats snapshots, and claim latency.

Every `every` seconds a background task of the server reads `queues()` and each queue's `stats()`
and keeps the rates between two snapshots in a ring buffer (`keep` points per queue). The rates
come from the store's counts, so they include workers that talk to the database directly:

- completed/s = the rise of `done` between two snapshots (a purge in between can hide some);
- claimed/s = the rise of `claimed + done + dead` (every claim adds to one of them until its
  lease ends back in `queued`), or the claims this server handed out for the queue in the
  interval, whichever is larger. A lease that ends back in `queued` within one interval (a
  release, a retried failure, a reaped expiry) is not seen by the counts, so both figures are
  lower bounds.

Claim latency is what this server can measure: its own handling of claims that did not wait
(store round trip included), per queue named, kept for `LATENCY_WINDOW` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from workclaim.errors import WorkclaimError
from workclaim.models import QueueStats
from workclaim.queue import AsyncQueue

log = logging.getLogger("workclaim.server")

MAX_QUEUES = 200
LATENCY_WINDOW = 300.0
LATENCY_KEEP = 4_096


@dataclass(frozen=True, slots=True)
class Rate:
    """Items per second over the interval that ended at `at`."""

    at: datetime
    claimed: float
    completed: float


@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles (seconds) of the observations in the window."""

    count: int
    p50: float | None
    p95: float | None


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank percentile `q` (0..1) of sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, round(q * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Window:
    """Timed observations, the last `LATENCY_WINDOW` seconds of them (at most `LATENCY_KEEP`)."""

    def __init__(self) -> None:
        self._items: deque[tuple[float, float]] = deque(maxlen=LATENCY_KEEP)

    def add(self, seconds: float, at: float | None = None) -> None:
        """Record one observation."""
        self._items.append((time.monotonic() if at is None else at, seconds))

    def summary(self, now: float | None = None) -> Latency:
        """p50 and p95 of the observations still in the window."""
        cutoff = (time.monotonic() if now is None else now) - LATENCY_WINDOW
        while self._items and self._items[0][0] < cutoff:
            self._items.popleft()
        values = sorted(v for _, v in self._items)
        return Latency(len(values), percentile(values, 0.50), percentile(values, 0.95))


class Activity:
    """The rate series and latency windows of one server."""

    def __init__(self, every: float = 2.0, keep: int = 150) -> None:
        self.every = every
        self.keep = keep
        self.series: dict[str, deque[Rate]] = {}
        self.claim_latency: dict[str, Window] = {}
        self.fused_latency: dict[str, Window] = {}
        self._last: dict[str, tuple[float, QueueStats]] = {}
        self._served: Counter[str] = Counter()

    def claimed(self, queue: str, count: int = 1) -> None:
        """Count leases this server handed out for `queue` (since the last snapshot)."""
        if queue in self.series or len(self.series) < MAX_QUEUES:
            self._served[queue] += count

    def claim_took(self, queues: Iterable[str], seconds: float, *, fused: bool = False) -> None:
        """Record the handling time of a claim that did not wait, for each queue it named."""
        windows = self.fused_latency if fused else self.claim_latency
        for name in queues:
            window = windows.get(name)
            if window is None:
                if len(windows) >= MAX_QUEUES:
                    continue
                window = windows[name] = Window()
            window.add(seconds)

    def observe(self, stats: QueueStats, at: float | None = None) -> None:
        """Take one snapshot of a queue's counts; adds a rate point after the first."""
        mono = time.monotonic() if at is None else at
        name = stats.queue
        previous = self._last.get(name)
        if previous is None and len(self._last) >= MAX_QUEUES:
            return
        self._last[name] = (mono, stats)
        if previous is None:
            self.series.setdefault(name, deque(maxlen=self.keep))
            self._served.pop(name, None)
            return
        then, old = previous
        elapsed = mono - then
        if elapsed <= 0:
            return
        completed = max(0, stats.done - old.done)
        moved = (stats.claimed + stats.done + stats.dead) - (old.claimed + old.done + old.dead)
        claimed = max(0, moved, self._served.pop(name, 0))
        self.series.setdefault(name, deque(maxlen=self.keep)).append(
            Rate(datetime.now(UTC), claimed / elapsed, completed / elapsed)
        )

    async def sample(self, queue: AsyncQueue) -> None:
        """One snapshot of every queue (at most `MAX_QUEUES`)."""
        names = (await queue.queues())[:MAX_QUEUES]
        for name in names:
            self.observe(await queue.stats(name))

    async def run(self, queue: AsyncQueue) -> None:
        """Sample every `every` seconds until cancelled; store errors skip a round."""
        while True:
            try:
                await self.sample(queue)
            except WorkclaimError:
                pass  # the database is unavailable: the next interval spans the gap
            except Exception as exc:  # keep sampling; log the class only (no payload or SQL)
                log.warning("dashboard sampling failed: %s", type(exc).__name__)
            await asyncio.sleep(self.every)
