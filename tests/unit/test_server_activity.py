"""The dashboard's rate series and latency windows (server/activity.py)."""

from __future__ import annotations

import pytest

from workclaim.models import QueueStats
from workclaim.server.activity import LATENCY_WINDOW, Activity, Window, percentile


def stats(queued: int = 0, claimed: int = 0, done: int = 0, dead: int = 0) -> QueueStats:
    return QueueStats(queue="q", queued=queued, claimed=claimed, done=done, dead=dead)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.5) is None


def test_rates_come_from_successive_snapshots() -> None:
    a = Activity(every=2)
    a.observe(stats(queued=10), at=100.0)
    assert list(a.series["q"]) == []  # one snapshot is not a rate yet
    a.observe(stats(queued=4, claimed=2, done=4), at=102.0)  # 6 claimed, 4 of them completed
    [point] = a.series["q"]
    assert (point.claimed, point.completed) == (3.0, 2.0)


def test_claims_that_went_back_to_queued_are_covered_by_the_servers_own_count() -> None:
    a = Activity(every=1)
    a.observe(stats(queued=5), at=0.0)
    a.claimed("q", 3)  # three claims served here, all released again before the next sample
    a.observe(stats(queued=5), at=1.0)
    a.observe(stats(queued=5), at=2.0)
    first, second = a.series["q"]
    assert (first.claimed, second.claimed) == (3.0, 0.0)


def test_a_purge_never_makes_a_rate_negative() -> None:
    a = Activity()
    a.observe(stats(done=50, dead=5), at=0.0)
    a.observe(stats(done=0, dead=0), at=2.0)
    [point] = a.series["q"]
    assert (point.claimed, point.completed) == (0.0, 0.0)


def test_the_series_is_a_ring_buffer() -> None:
    a = Activity(keep=3)
    for t in range(10):
        a.observe(stats(done=t), at=float(t))
    assert len(a.series["q"]) == 3


def test_latency_keeps_only_the_window() -> None:
    w = Window()
    w.add(1.0, at=0.0)
    for v in (0.001, 0.002, 0.003):
        w.add(v, at=LATENCY_WINDOW + 10)
    summary = w.summary(now=LATENCY_WINDOW + 20)
    assert summary.count == 3
    assert summary.p50 == pytest.approx(0.002) and summary.p95 == pytest.approx(0.003)


def test_claim_latency_is_kept_per_queue_named() -> None:
    a = Activity()
    a.claim_took(["a", "b"], 0.004)
    a.claim_took(["b"], 0.002, fused=True)
    assert a.claim_latency["a"].summary().count == 1 and a.claim_latency["b"].summary().count == 1
    assert "a" not in a.fused_latency and a.fused_latency["b"].summary().p50 == 0.002
