"""Inputs that a store could keep but no answer could carry back are refused up front: payloads
and results nested too deeply, times outside what a datetime holds once in UTC (issue 13, 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.contract.helpers import at, claim_one
from workclaim import Settings, Status, ValidationError
from workclaim.validation import LATEST_TIME, MAX_JSON_DEPTH


def nested(depth: int) -> Any:
    """A payload of `depth` arrays inside each other around a small object."""
    value: Any = {"leaf": "[not a bracket"}
    for _ in range(depth - 1):
        value = [value]
    return value


def test_payloads_nested_up_to_the_limit_round_trip(queue: Any) -> None:
    item_id = queue.enqueue("jobs", nested(MAX_JSON_DEPTH), now=at(0))
    assert queue.get(item_id).payload == nested(MAX_JSON_DEPTH)
    assert claim_one(queue).payload == nested(MAX_JSON_DEPTH)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 990])
def test_payloads_nested_past_the_limit_are_refused_and_nothing_is_stored(
    queue: Any, depth: int
) -> None:
    with pytest.raises(ValidationError, match="deep"):
        queue.enqueue("jobs", nested(depth), now=at(0))
    with pytest.raises(ValidationError, match="payload #1"):
        queue.enqueue_many("jobs", [1, nested(depth)], now=at(0))
    assert queue.stats("jobs").total == 0
    assert queue.claim("jobs", worker="w1", now=at(0)) == []


def test_results_obey_the_same_depth_limit(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=at(0))
    lease = claim_one(queue)
    with pytest.raises(ValidationError, match="deep"):
        queue.complete(lease, result=nested(MAX_JSON_DEPTH + 1), now=at(1))
    assert queue.get(item_id).status is Status.CLAIMED
    queue.complete(lease, result=nested(MAX_JSON_DEPTH), now=at(1))
    assert queue.get(item_id).result == nested(MAX_JSON_DEPTH)


@pytest.mark.parametrize(
    "run_at",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59))),
        datetime(1899, 12, 31, 23, 59, tzinfo=UTC),
        datetime(2200, 1, 1, 0, 0, 1, tzinfo=UTC),
    ],
)
def test_a_run_at_out_of_range_in_utc_is_refused(queue: Any, run_at: datetime) -> None:
    with pytest.raises(ValidationError, match="run_at"):
        queue.enqueue("jobs", 1, run_at=run_at, now=at(0))
    with pytest.raises(ValidationError, match="run_at"):
        queue.enqueue_many("jobs", [1, 2], run_at=run_at, now=at(0))
    assert queue.stats("jobs").total == 0


def test_a_run_at_in_range_in_any_offset_is_kept_in_utc(queue: Any) -> None:
    early = datetime(1900, 1, 1, 13, tzinfo=timezone(timedelta(hours=13)))
    item_id = queue.enqueue("jobs", 1, run_at=early, now=at(0))
    assert queue.get(item_id).run_at == early


def test_delays_may_not_push_a_time_out_of_range(queue: Any, settings: Settings) -> None:
    late = LATEST_TIME - timedelta(days=1)
    with pytest.raises(ValidationError, match="delay"):
        queue.enqueue("jobs", 1, delay=2 * 86_400.0, now=late)
    item_id = queue.enqueue("jobs", 1, now=late)
    [lease] = queue.claim("jobs", worker="w1", now=late)
    with pytest.raises(ValidationError, match="delay"):
        queue.release(lease, delay=2 * 86_400.0, now=late)
    queue.release(lease, delay=60.0, now=late)
    assert queue.get(item_id).run_at == late + timedelta(seconds=60)


def test_a_retry_backoff_may_not_push_a_time_out_of_range(queue: Any) -> None:
    item_id = queue.enqueue("jobs", 1, now=LATEST_TIME)
    [lease] = queue.claim("jobs", worker="w1", now=LATEST_TIME)
    with pytest.raises(ValidationError, match="backoff"):
        queue.fail(lease, "boom", now=LATEST_TIME)
    assert queue.fail(lease, "boom", retry=False, now=LATEST_TIME) is Status.DEAD
    assert queue.get(item_id).status is Status.DEAD
