"""Enqueueing: payload round trips, batches, validation, dedupe keys."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest

from tests.contract.helpers import at, claim_one, status_of
from workclaim import PayloadTooLarge, Settings, Status, ValidationError

PAYLOADS: list[Any] = [
    {"to": "a@example.org", "n": 1},
    [1, 2.5, "three", None, True, False],
    "plain string",
    42,
    -7.25,
    True,
    None,
    {"nested": {"deep": [{"x": "ü€😀"}]}, "empty": {}, "list": []},
    "a literal backslash-u0000 is fine: \\u0000",
    {"big": 2**60},
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_payload_round_trips_through_get_and_claim(queue: Any, payload: Any) -> None:
    item_id = queue.enqueue("jobs", payload, now=at(0))
    assert queue.get(item_id).payload == payload
    lease = claim_one(queue)
    assert lease.id == item_id
    assert lease.payload == payload


def test_enqueue_gives_increasing_ids_and_queued_items(queue: Any) -> None:
    ids = [queue.enqueue("jobs", {"n": n}, now=at(0)) for n in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    item = queue.get(ids[0])
    assert item.status is Status.QUEUED
    assert (item.queue, item.attempts, item.max_attempts, item.priority) == ("jobs", 0, 5, 0)
    assert item.run_at == at(0)
    assert item.created_at.tzinfo is not None


def test_enqueue_many_returns_ids_in_input_order(queue: Any) -> None:
    ids = queue.enqueue_many("jobs", [{"n": n} for n in range(50)], now=at(0))
    assert len(ids) == 50 and len(set(ids)) == 50
    assert [queue.get(i).payload["n"] for i in ids] == list(range(50))
    assert queue.enqueue_many("jobs", [], now=at(0)) == []


def test_enqueue_many_is_all_or_nothing(queue: Any) -> None:
    with pytest.raises(ValidationError, match="payload #2"):
        queue.enqueue_many("jobs", [{"ok": 1}, {"ok": 2}, {"bad": math.nan}], now=at(0))
    assert queue.stats("jobs").total == 0


def test_max_attempts_default_and_per_item(queue: Any) -> None:
    default = queue.enqueue("jobs", 1, now=at(0))
    custom = queue.enqueue("jobs", 2, max_attempts=2, now=at(0))
    assert queue.get(default).max_attempts == 5
    assert queue.get(custom).max_attempts == 2


@pytest.mark.parametrize(
    "name", ["", "has space", "-leading", ".dot", "x" * 129, "semi;colon", "ünï", "a/b", 7, None]
)
def test_bad_queue_names_are_refused_and_nothing_is_written(queue: Any, name: Any) -> None:
    with pytest.raises(ValidationError, match="queue name"):
        queue.enqueue(name, {"x": 1})
    with pytest.raises(ValidationError, match="queue name"):
        queue.claim(name, worker="w1")


def test_good_queue_names_are_accepted(queue: Any) -> None:
    for name in ["a", "A9", "emails.high", "tenant:42:jobs", "x-y_z", "x" * 128]:
        queue.enqueue(name, 1)
        assert queue.stats(name).queued == 1


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        (math.nan, "JSON"),
        (math.inf, "JSON"),
        ({"x": -math.inf}, "JSON"),
        ("nul \x00 inside", "NUL"),
        ({"key\x00": 1}, "NUL"),
        ("lone \ud800 surrogate", "surrogate"),
        ({1, 2}, "JSON"),
        (object(), "JSON"),
        (b"bytes", "JSON"),
    ],
)
def test_bad_payloads_are_refused(queue: Any, payload: Any, what: str) -> None:
    with pytest.raises(ValidationError, match=what):
        queue.enqueue("jobs", payload)
    assert queue.stats("jobs").total == 0


def test_oversized_payload_is_refused(queue: Any, settings: Settings) -> None:
    with pytest.raises(PayloadTooLarge):
        queue.enqueue("jobs", "x" * settings.max_payload_bytes)
    assert queue.stats("jobs").total == 0


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"priority": 2**31}, "priority"),
        ({"priority": True}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"delay": -1}, "delay"),
        ({"delay": math.nan}, "delay"),
        ({"delay": math.inf}, "delay"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -3}, "max_attempts"),
        ({"dedupe_key": "bad key"}, "dedupe"),
        ({"run_at": datetime(2030, 1, 1)}, "run_at"),
        ({"run_at": at(5), "delay": 3}, "either"),
    ],
)
def test_bad_enqueue_options_are_refused(queue: Any, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        queue.enqueue("jobs", 1, **options)
    assert queue.stats("jobs").total == 0


def test_dedupe_key_returns_the_live_item(queue: Any) -> None:
    first = queue.enqueue("jobs", {"v": 1}, dedupe_key="k1", now=at(0))
    again = queue.enqueue("jobs", {"v": 2}, dedupe_key="k1", now=at(0))
    assert again == first
    assert queue.get(first).payload == {"v": 1}
    assert queue.stats("jobs").queued == 1
    other_queue = queue.enqueue("other", {"v": 3}, dedupe_key="k1", now=at(0))
    assert other_queue != first


def test_dedupe_key_is_held_while_claimed_and_while_waiting_for_retry(queue: Any) -> None:
    first = queue.enqueue("jobs", 1, dedupe_key="k", now=at(0))
    lease = claim_one(queue)
    assert queue.enqueue("jobs", 2, dedupe_key="k", now=at(1)) == first
    assert queue.fail(lease, "boom", now=at(1)) is Status.QUEUED
    assert queue.get(first).run_at > at(1)
    assert queue.enqueue("jobs", 3, dedupe_key="k", now=at(2)) == first


@pytest.mark.parametrize("finish", ["complete", "cancel", "dead"])
def test_dedupe_key_is_free_once_the_item_is_finished(queue: Any, finish: str) -> None:
    first = queue.enqueue("jobs", 1, dedupe_key="k", now=at(0))
    if finish == "cancel":
        queue.cancel(first, now=at(1))
    else:
        lease = claim_one(queue)
        if finish == "complete":
            queue.complete(lease, now=at(1))
        else:
            queue.fail(lease, "fatal", retry=False, now=at(1))
    second = queue.enqueue("jobs", 2, dedupe_key="k", now=at(2))
    assert second != first
    assert status_of(queue, second) == "queued"


def test_dedupe_key_repeated_inside_one_batch_is_not_possible_via_enqueue_many(queue: Any) -> None:
    # enqueue_many takes no dedupe keys; two single enqueues with one key give one item.
    ids = {queue.enqueue("jobs", n, dedupe_key="same", now=at(0)) for n in range(5)}
    assert len(ids) == 1
