"""The HTTP client's flow-control calls, offline: groups sent and read, policies sent and read.

No server: requests are built with `Calls` and answers are `httpx.Response` values built here
(as in `test_client_wire.py`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from workclaim.client._wire import Calls, Options, item_of, lease_of
from workclaim.errors import ValidationError
from workclaim.models import GroupLeases, QueuePolicy, Rate

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
POLICY_JSON: dict[str, Any] = {
    "queue": "jobs",
    "concurrency": 5,
    "group_concurrency": 1,
    "rate": {"count": 100, "per_seconds": 60},
    "group_rate": None,
    "paused": True,
}
POLICY = QueuePolicy("jobs", 5, 1, Rate(100, 60.0), None, paused=True)


def sent_body(call: Any) -> Any:
    send = Options("http://127.0.0.1:8000", None, 10.0, 0, 0.1).request(call)
    return json.loads(send.options["content"])


def test_enqueue_sends_the_group_only_when_one_is_given() -> None:
    options: dict[str, Any] = {"priority": 0, "delay": 0, "run_at": None, "max_attempts": None}
    one = Calls.enqueue("jobs", 1, dedupe_key=None, now=None, group="tenant-42", **options)
    assert sent_body(one) == {"priority": 0, "delay": 0, "payload": 1, "group": "tenant-42"}
    many = Calls.enqueue_many("jobs", [1, 2], now=None, group="t.1", **options)
    assert sent_body(many)["group"] == "t.1"
    # No group: no field, so that a server from before flow control still takes the request.
    assert "group" not in sent_body(Calls.enqueue("jobs", 1, dedupe_key=None, now=None, **options))
    with pytest.raises(ValidationError, match="group"):
        Calls.enqueue("jobs", 1, dedupe_key=None, now=None, group="no spaces", **options)
    with pytest.raises(ValidationError, match="group"):
        Calls.enqueue_many("jobs", [1], now=None, group="", **options)


def test_leases_and_items_carry_their_group_and_an_older_servers_answer_reads_as_none() -> None:
    lease = {
        "id": 7,
        "queue": "jobs",
        "payload": 1,
        "token": 42,
        "attempt": 1,
        "max_attempts": 3,
        "expires_at": NOW.isoformat(),
        "worker": "w-1",
        "lease_seconds": 30,
    }
    assert lease_of(lease | {"group": "tenant-42"}).group == "tenant-42"
    assert lease_of(lease | {"group": None}).group is None
    assert lease_of(lease).group is None
    item = {
        "id": 7,
        "queue": "jobs",
        "payload": 1,
        "status": "queued",
        "priority": 0,
        "run_at": NOW.isoformat(),
        "attempts": 0,
        "max_attempts": 3,
        "dedupe_key": None,
        "worker": None,
        "expires_at": None,
        "last_error": None,
        "result": None,
        "created_at": NOW.isoformat(),
        "updated_at": NOW.isoformat(),
    }
    assert item_of(item | {"group": "g"}).group == "g"
    assert item_of(item).group is None


def test_set_policy_sends_all_four_limits_with_rates_as_objects() -> None:
    call = Calls.set_policy(
        "jobs", concurrency=5, group_concurrency=None, rate=(100, 60), group_rate=Rate(1, 0.5)
    )
    assert (call.method, call.path, call.idempotent) == ("PUT", "/queues/jobs/policy", True)
    assert sent_body(call) == {
        "concurrency": 5,
        "group_concurrency": None,
        "rate": {"count": 100, "per_seconds": 60.0},
        "group_rate": {"count": 1, "per_seconds": 0.5},
    }
    assert call.parse(httpx.Response(200, json=POLICY_JSON)) == POLICY


@pytest.mark.parametrize(
    "limits",
    [
        {"concurrency": 0},
        {"group_concurrency": 1_000_001},
        {"concurrency": True},
        {"rate": (0, 60)},
        {"rate": (1, 0)},
        {"group_rate": (1, 86_401)},
        {"group_rate": (1, 2, 3)},
    ],
)
def test_a_bad_policy_is_refused_before_anything_is_sent(limits: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Calls.set_policy(
            "jobs",
            **(
                {"concurrency": None, "group_concurrency": None, "rate": None, "group_rate": None}
                | limits
            ),
        )


def test_policy_pause_resume_and_groups_are_repeatable_reads_or_writes() -> None:
    answer = httpx.Response(200, json=POLICY_JSON)
    for call, method, path in [
        (Calls.policy("jobs"), "GET", "/queues/jobs/policy"),
        (Calls.set_paused("jobs", True), "POST", "/queues/jobs/pause"),
        (Calls.set_paused("jobs", False), "POST", "/queues/jobs/resume"),
    ]:
        assert (call.method, call.path, call.idempotent) == (method, path, True)
        assert call.parse(answer) == POLICY
    groups = Calls.live_leases_by_group("jobs", limit=3, now=NOW)
    assert (groups.method, groups.path, groups.params) == (
        "GET",
        "/queues/jobs/groups",
        {"limit": 3},
    )
    rows = {"queue": "jobs", "groups": [{"group": "a", "live": 3}, {"group": None, "live": 1}]}
    assert groups.parse(httpx.Response(200, json=rows)) == [
        GroupLeases("a", 3),
        GroupLeases(None, 1),
    ]
    with pytest.raises(ValidationError):
        Calls.live_leases_by_group("jobs", limit=0, now=None)
    with pytest.raises(ValidationError):
        Calls.policy("bad name")
