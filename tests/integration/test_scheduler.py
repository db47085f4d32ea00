"""The scheduler loop on a real store, beyond the contract: one schedule this process cannot fire
(its payload over this process's cap) is logged and skipped, and the others still fire; a pass
is never ended by it, so the scheduler thread keeps running."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from workclaim import Queue, Settings, Status
from workclaim.scheduler import Scheduler

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_a_schedule_that_cannot_fire_does_not_stop_the_others(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Queue(store_url) as declarer:
        declarer.schedule("a-big", "jobs", "*/10 * * * *", payload="x" * 2000, now=T0)
        declarer.schedule("b-small", "jobs", "*/10 * * * *", payload="y", now=T0)
    slot = T0 + timedelta(minutes=10)
    with Queue(store_url, settings=Settings(max_payload_bytes=1000)) as small:
        scheduler = Scheduler(small, clock=lambda: slot + timedelta(seconds=5))
        with caplog.at_level(logging.ERROR, logger="workclaim.scheduler"):
            assert scheduler.tick() == slot + timedelta(minutes=10)
        assert scheduler.enqueued == 1
        keys = [item.dedupe_key for item in small.items("jobs", Status.QUEUED)]
        assert keys == ["schedule:b-small:20300101T121000Z"]
        assert "schedule a-big: not fired this pass" in caplog.text
        assert small.get_schedule("a-big", now=slot).last_slot is None
