"""Flow control over HTTP: groups on enqueue, leases and items; the policy, pause and resume
routes and the busiest-groups read; their problem answers and their `admin` scope.

Against a live uvicorn server on a SQLite store (as `test_http_api.py`); each test uses its own
queue names. Whether claims obey a policy exactly is the contract suite's job
(`tests/contract/test_flow.py`, both transports); here a claim on a paused queue only shows that
the routes reach the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.served_api import Api, problem, served_api
from workclaim import GroupLeases, QueuePolicy, Rate

NO_LIMITS = {
    "concurrency": None,
    "group_concurrency": None,
    "rate": None,
    "group_rate": None,
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    scopes = {"alice": ["work:*", "enqueue"], "root": ["admin"]}
    with served_api(tmp_path_factory.mktemp("flow"), scopes, max_batch=10, max_wait=30) as api:
        yield api


def test_a_group_given_on_enqueue_shows_on_leases_and_items(api: Api) -> None:
    with api.http("alice") as alice:
        one = alice.post("/queues/g-show/items", json={"payload": 1, "group": "tenant-42"})
        assert one.status_code == 201, one.text
        batch = alice.post("/queues/g-show/items", json={"payloads": [2, 3], "group": "t.7"})
        plain = alice.post("/queues/g-show/items", json={"payload": 4})
        ids = [*one.json()["ids"], *batch.json()["ids"], *plain.json()["ids"]]
        groups = {ids[0]: "tenant-42", ids[1]: "t.7", ids[2]: "t.7", ids[3]: None}
        listed = alice.get("/queues/g-show/items").json()["items"]
        assert {x["id"]: x["group"] for x in listed} == groups
        assert alice.get(f"/items/{ids[0]}").json()["group"] == "tenant-42"
        assert alice.get(f"/items/{ids[3]}").json()["group"] is None  # always present
        claimed = alice.post("/worker/claim", json={"queue": "g-show", "limit": 10})
        assert {x["id"]: x["group"] for x in claimed.json()["leases"]} == groups


def test_the_policy_round_trip_keeps_the_paused_flag(api: Api) -> None:
    with api.http("root") as root:
        assert root.get("/queues/p-trip/policy").json() == {
            "queue": "p-trip",
            **NO_LIMITS,
            "paused": False,
        }
        limits = {
            "concurrency": 5,
            "group_concurrency": 1,
            "rate": {"count": 100, "per_seconds": 60},
            "group_rate": {"count": 2, "per_seconds": 0.5},
        }
        put = root.put("/queues/p-trip/policy", json=limits)
        assert put.status_code == 200, put.text
        assert put.json() == {"queue": "p-trip", **limits, "paused": False}
        assert root.get("/queues/p-trip/policy").json() == put.json()
        paused = root.post("/queues/p-trip/pause")
        assert paused.json() == {"queue": "p-trip", **limits, "paused": True}
        # PUT replaces the four limits (one left out is lifted) and keeps the pause.
        kept = root.put("/queues/p-trip/policy", json={"concurrency": 2})
        assert kept.json() == {"queue": "p-trip", **NO_LIMITS, "concurrency": 2, "paused": True}
        resumed = root.post("/queues/p-trip/resume")
        assert resumed.json()["paused"] is False and resumed.json()["concurrency"] == 2
        assert root.put("/queues/p-trip/policy", json={}).json() == {
            "queue": "p-trip",
            **NO_LIMITS,
            "paused": False,
        }


def test_a_paused_queue_gives_nothing_until_resumed(api: Api) -> None:
    with api.http("root") as root, api.http("alice") as alice:
        alice.post("/queues/p-stop/items", json={"payload": 1})
        assert root.post("/queues/p-stop/pause").status_code == 200
        assert alice.post("/worker/claim", json={"queue": "p-stop"}).status_code == 204
        root.post("/queues/p-stop/resume")
        assert len(alice.post("/worker/claim", json={"queue": "p-stop"}).json()["leases"]) == 1


def long_poll(api: Api, queue: str, free_a_slot: Callable[[], object]) -> httpx.Response:
    """A 30 s long-poll claim on `queue` as alice; once it is waiting, `free_a_slot()` runs.
    Returns the claim's answer: leases if the slot freed woke the waiting claim, else a 204
    when the 30 s are over."""
    results: list[httpx.Response] = []

    def poll() -> None:
        with api.http("alice") as c:
            results.append(c.post("/worker/claim", json={"queue": queue, "wait": 30}))

    waiter = threading.Thread(target=poll)
    waiter.start()
    with api.http("root") as root:
        deadline = time.monotonic() + 20
        while "workclaim_longpolls_waiting 1.0" not in root.get("/metrics").text:
            assert time.monotonic() < deadline, "the long-poll never started waiting"
            time.sleep(0.02)
    free_a_slot()
    waiter.join(40)
    [answer] = results
    return answer


@pytest.mark.timeout(60)
def test_a_long_poll_on_a_paused_queue_waits_and_resume_wakes_it(api: Api) -> None:
    """The long-poll's shared claim gets [] from the paused queue and waits on the store's
    wake-ups; `resume` is one of them, so the waiting claim takes the item before its 30 s
    wait ends (were it not woken, it would answer 204 at the end)."""
    with api.http("root") as root, api.http("alice") as alice:
        item = alice.post("/queues/p-wait/items", json={"payload": 1}).json()["ids"][0]
        root.post("/queues/p-wait/pause")
        answer = long_poll(api, "p-wait", lambda: root.post("/queues/p-wait/resume"))
    assert answer.status_code == 200
    assert [x["id"] for x in answer.json()["leases"]] == [item]


@pytest.mark.timeout(60)
def test_a_long_poll_on_a_full_group_is_woken_by_a_complete(api: Api) -> None:
    with api.http("root") as root, api.http("alice") as alice:
        root.put("/queues/l-full/policy", json={"group_concurrency": 1})
        ids = alice.post("/queues/l-full/items", json={"payloads": [1, 2], "group": "g"})
        first, second = ids.json()["ids"]
        [held] = alice.post("/worker/claim", json={"queue": "l-full", "limit": 2}).json()["leases"]
        assert held["id"] == first  # the group's one slot is taken: the second item waits
        ref = {"id": held["id"], "token": held["token"]}
        answer = long_poll(api, "l-full", lambda: alice.post("/worker/complete", json=ref))
    assert answer.status_code == 200
    assert [(x["id"], x["group"]) for x in answer.json()["leases"]] == [(second, "g")]


@pytest.mark.timeout(60)
def test_a_long_poll_on_a_rate_limited_queue_wakes_when_the_window_moves_on(api: Api) -> None:
    """One claim per second: the second item is claimable once the first claim leaves the
    window, a time the store's `next_due` gives the waiting claim (nothing else happens)."""
    with api.http("root") as root, api.http("alice") as alice:
        root.put("/queues/l-rate/policy", json={"rate": {"count": 1, "per_seconds": 1}})
        first, second = alice.post("/queues/l-rate/items", json={"payloads": [1, 2]}).json()["ids"]
        [held] = alice.post("/worker/claim", json={"queue": "l-rate", "limit": 2}).json()["leases"]
        assert held["id"] == first
        answer = alice.post("/worker/claim", json={"queue": "l-rate", "wait": 30})
    assert answer.status_code == 200
    assert [x["id"] for x in answer.json()["leases"]] == [second]


def test_the_busiest_groups_read(api: Api) -> None:
    with api.http("root") as root, api.http("alice") as alice:
        for group, n in (("big", 3), ("small", 1), (None, 2)):
            body: dict[str, Any] = {"payloads": list(range(n)), "group": group}
            assert alice.post("/queues/g-busy/items", json=body).status_code == 201
        claimed = alice.post("/worker/claim", json={"queue": "g-busy", "limit": 10})
        assert len(claimed.json()["leases"]) == 6
        alice.post("/queues/g-busy/items", json={"payload": 0, "group": "idle"})  # no lease
        assert root.get("/queues/g-busy/groups").json() == {
            "queue": "g-busy",
            "groups": [
                {"group": "big", "live": 3},
                {"group": None, "live": 2},
                {"group": "small", "live": 1},
            ],
        }
        top = root.get("/queues/g-busy/groups", params={"limit": 1}).json()["groups"]
        assert top == [{"group": "big", "live": 3}]
        assert root.get("/queues/g-none/groups").json() == {"queue": "g-none", "groups": []}


def test_the_flow_routes_need_the_admin_scope(api: Api) -> None:
    routes = [
        ("GET", "/queues/jobs/policy", None),
        ("PUT", "/queues/jobs/policy", {"concurrency": 1}),
        ("POST", "/queues/jobs/pause", None),
        ("POST", "/queues/jobs/resume", None),
        ("GET", "/queues/jobs/groups", None),
    ]
    for method, path, body in routes:
        problem(api.call(None, method, path, json=body), 401, "unauthorized")
        problem(api.call("alice", method, path, json=body), 403, "forbidden")
    # Nothing was changed by the refused calls.
    assert api.call("root", "GET", "/queues/jobs/policy").json()["paused"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"concurrency": 0},
        {"concurrency": -1},
        {"concurrency": 1_000_001},
        {"concurrency": "5"},
        {"concurrency": True},
        {"concurrency": 1.5},
        {"group_concurrency": 0},
        {"rate": [10, 60]},  # rates are objects, never pairs
        {"rate": {"count": 0, "per_seconds": 60}},
        {"rate": {"count": 10, "per_seconds": 0}},
        {"rate": {"count": 10, "per_seconds": -1}},
        {"rate": {"count": 10, "per_seconds": 86_401}},
        {"rate": {"count": 10}},
        {"rate": {"count": 10, "per_seconds": 60, "burst": 2}},
        {"group_rate": {"count": "10", "per_seconds": 60}},
        {"paused": True},  # the flag is set with /pause and /resume only
        {"limit": 3},
    ],
)
def test_a_bad_policy_is_a_422_problem_and_changes_nothing(api: Api, body: dict[str, Any]) -> None:
    with api.http("root") as root:
        root.put("/queues/p-bad/policy", json={"concurrency": 7})
        problem(root.put("/queues/p-bad/policy", json=body), 422, "validation-error")
        assert root.get("/queues/p-bad/policy").json()["concurrency"] == 7


def test_other_bad_flow_input_is_a_problem(api: Api) -> None:
    with api.http("root") as root, api.http("alice") as alice:
        for group in ("", "no spaces", "x" * 129, 7, ["a"]):
            r = alice.post("/queues/g-bad/items", json={"payload": 1, "group": group})
            problem(r, 422, "validation-error")
        problem(
            alice.post("/queues/g-bad/items", json={"payloads": [1], "group": "-lead"}),
            422,
            "validation-error",
        )
        problem(root.get("/queues/bad name/policy"), 422, "validation-error")
        problem(root.post("/queues/bad name/pause"), 422, "validation-error")
        problem(root.get("/queues/g-bad/groups", params={"limit": 0}), 422, "validation-error")
        problem(root.get("/queues/g-bad/groups", params={"limit": 1001}), 422, "validation-error")
        problem(root.get("/queues/g-bad/pause"), 405, "method-not-allowed")
        not_json = root.put(
            "/queues/g-bad/policy", content=b"{nope", headers={"content-type": "application/json"}
        )
        problem(not_json, 400, "bad-request")
        assert alice.get("/queues/g-bad/items").json()["items"] == []


def test_the_client_speaks_flow_control(api: Api) -> None:
    with api.client("root") as root, api.client("alice") as alice:
        first = alice.enqueue("c-flow", {"n": 1}, group="tenant-1")
        [second, third] = alice.enqueue_many("c-flow", [2, 3], group="tenant-2")
        assert alice.get(first).group == "tenant-1" and alice.get(third).group == "tenant-2"
        assert [x.group for x in alice.items("c-flow")] == ["tenant-1", "tenant-2", "tenant-2"]
        policy = root.set_policy("c-flow", concurrency=3, rate=(10, 60), group_rate=Rate(5, 1.5))
        assert policy == QueuePolicy("c-flow", 3, None, Rate(10, 60.0), Rate(5, 1.5), False)
        assert root.policy("c-flow") == policy
        assert root.pause("c-flow").paused is True
        assert alice.claim("c-flow", limit=3) == []
        assert root.resume("c-flow") == policy
        leases = alice.claim("c-flow", limit=3)
        assert {(x.id, x.group) for x in leases} == {
            (first, "tenant-1"),
            (second, "tenant-2"),
            (third, "tenant-2"),
        }
        assert root.live_leases_by_group("c-flow") == [
            GroupLeases("tenant-2", 2),
            GroupLeases("tenant-1", 1),
        ]
        assert root.live_leases_by_group("c-flow", limit=1) == [GroupLeases("tenant-2", 2)]
        assert root.set_policy("c-flow") == QueuePolicy("c-flow")
