"""The listing, history, fused and dashboard endpoints, and the dashboard's pages and headers,
against a live uvicorn server with auth on (SQLite store).

Tokens: alice works on and enqueues to every queue, bob works on `jobs` only, `producer` may only
enqueue to `jobs`, `root` is admin. Each test uses its own queue names on one shared server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.served_api import Api, problem, served_api
from workclaim import EventKind, Status
from workclaim.client import AccessDenied


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    scopes = {
        "alice": ["work:*", "enqueue"],
        "bob": ["work:jobs"],
        "producer": ["enqueue:jobs"],
        "root": ["admin"],
    }
    with served_api(tmp_path_factory.mktemp("dash"), scopes, sample_seconds=0.2) as api:
        yield api


def test_queues_lists_every_queue_with_its_counts(api: Api) -> None:
    with api.client("alice") as alice, api.client("root") as root:
        alice.enqueue_many("lq-b", [1, 2])
        alice.enqueue("lq-a", 1)
        [lease] = alice.claim("lq-a", lease_seconds=0.01)
        assert {"lq-a", "lq-b"} <= set(root.queues())
        doc = {q["queue"]: q for q in api.call("root", "GET", "/queues").json()["queues"]}
        assert doc["lq-b"]["queued"] == 2 and doc["lq-b"]["total"] == 2
        assert doc["lq-a"]["claimed"] == 1
        with pytest.raises(AccessDenied):
            alice.queues()
        assert lease.queue == "lq-a"
    problem(api.call(None, "GET", "/queues"), 401, "unauthorized")


def test_items_are_paged_by_id_and_scoped_to_the_callers_queues(api: Api) -> None:
    with api.client("alice") as alice, api.client("producer") as producer:
        ids = producer.enqueue_many("jobs", ["a", "b", "c"])
        r = api.call("producer", "GET", "/queues/jobs/items", params={"limit": 2})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) == 2 and page["next_after"] == page["items"][-1]["id"]
        everything = [x.id for x in producer.items("jobs", "queued", limit=1000)]
        assert everything == sorted(everything) and set(ids) <= set(everything)
        later = [x.id for x in producer.items("jobs", Status.QUEUED, after=ids[0], limit=1000)]
        assert later == [x for x in everything if x > ids[0]]
        alice.enqueue("elsewhere", 1)
    problem(api.call("producer", "GET", "/queues/elsewhere/items"), 403, "forbidden")
    problem(api.call("alice", "GET", "/queues/jobs/items?status=lost"), 422, "validation-error")
    problem(api.call("alice", "GET", "/queues/jobs/items?limit=0"), 422, "validation-error")


def test_history_is_visible_like_the_item(api: Api) -> None:
    with api.client("alice") as alice:
        item_id = alice.enqueue("hist", {"n": 1})
        [lease] = alice.claim("hist")
        alice.fail(lease, "boom")
        events = alice.history(item_id)
        assert [e.kind for e in events] == [EventKind.CLAIMED, EventKind.FAILED]
        assert events[1].error == "boom" and events[0].worker == "alice"
    problem(api.call("producer", "GET", f"/items/{item_id}/history"), 404, "item-not-found")
    problem(api.call("alice", "GET", "/items/987654321/history"), 404, "item-not-found")


def test_complete_and_claim_is_fenced_on_the_tokens_identity(api: Api) -> None:
    with api.client("alice") as alice, api.client("bob") as bob:
        ids = alice.enqueue_many("fused", [1, 2, 3, 4])
        got = alice.claim("fused", limit=2)
        lost, more = alice.complete_and_claim([got[0], (got[1], {"ok": 1})], "fused", limit=1)
        assert lost == [] and len(more) == 1 and more[0].worker == "alice"
        assert alice.get(got[1].id).result == {"ok": 1}
        # bob presents alice's lease: refused as lost, and alice's item is untouched
        lost, _ = bob.complete_and_claim([more[0]], "jobs", limit=0)
        assert lost == [more[0]]
        assert alice.get(more[0].id).status == Status.CLAIMED
        alice.complete(more[0])
        with pytest.raises(AccessDenied):
            bob.complete_and_claim([], "other", limit=1)
        assert [x.id for x in [*got, *more]] == ids[:3]
    r = api.call(
        "alice", "POST", "/worker/complete-and-claim", json={"queue": "jobs", "worker": "mallory"}
    )
    problem(r, 403, "forbidden")
    r = api.call("alice", "POST", "/worker/complete-and-claim", json={"done": []})
    problem(r, 422, "validation-error")


def test_dashboard_data_matches_the_store(api: Api) -> None:
    with api.client("alice") as alice:
        queued = alice.enqueue_many("dash", ["q1", "q2"], max_attempts=1)
        extra = alice.enqueue_many("dash", ["x", "y", "z"], max_attempts=1)
        leases = alice.claim("dash", limit=3, lease_seconds=600)
        alice.complete(leases[0])
        alice.fail(leases[1], "<script>alert(1)</script>", retry=False)
        alice.cancel(extra[-1])
    r = api.call("root", "GET", "/dashboard")
    assert r.status_code == 200, r.text
    [panel] = [q for q in r.json()["queues"] if q["name"] == "dash"]
    assert {k: panel["stats"][k] for k in ("queued", "claimed", "done", "dead", "cancelled")} == {
        "queued": 1,
        "claimed": 1,
        "done": 1,
        "dead": 1,
        "cancelled": 1,
    }
    [held] = panel["leases"]
    assert (held["id"], held["worker"], held["attempt"], held["overdue"]) == (
        leases[2].id,
        "alice",
        1,
        False,
    )
    assert held["claimed_at"] is not None
    [dead] = panel["dead"]
    assert (dead["id"], dead["last_error"]) == (leases[1].id, "<script>alert(1)</script>")
    assert queued[0] == leases[0].id
    problem(api.call("alice", "GET", "/dashboard"), 403, "forbidden")
    problem(api.call(None, "GET", "/dashboard"), 401, "unauthorized")


def test_the_sampler_charts_claims_and_completions(api: Api) -> None:
    with api.client("alice") as alice, api.http("root") as root:

        def panel() -> dict[str, Any]:
            queues = root.get("/dashboard").json()["queues"]
            return next((q for q in queues if q["name"] == "rates"), {"series": []})

        alice.enqueue_many("rates", list(range(5)))
        deadline = time.monotonic() + 20
        while not panel()["series"] and time.monotonic() < deadline:
            time.sleep(0.05)  # the sampler must see the queue twice before it charts it
        for lease in alice.claim("rates", limit=5):
            alice.complete(lease)
        seen = {"claimed": 0.0, "completed": 0.0}
        while not all(seen.values()) and time.monotonic() < deadline:
            last = panel()
            for point in last["series"]:
                for key in seen:
                    seen[key] = max(seen[key], point[key])
        assert seen["claimed"] > 0 and seen["completed"] > 0
        latency = last["claim_latency"]
        assert latency["count"] >= 1 and latency["p50"] <= latency["p95"]


def test_pages_load_without_a_token_under_a_strict_policy(api: Api) -> None:
    with api.http(None) as anon:
        for path in ("/", "/ui/items/1"):
            r = anon.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert '<script src="/ui/app.js" defer></script>' in r.text
        js = anon.get("/ui/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in js.text and "sessionStorage" in js.text
        assert anon.get("/ui/app.css").status_code == 200
        problem(anon.get("/ui/secrets.txt"), 404, "not-found")
        assert "/dashboard" in anon.get("/openapi.json").json()["paths"]


def test_cross_site_browser_requests_are_refused(api: Api) -> None:
    with api.client("alice") as alice:
        item_id = alice.enqueue("csrf", 1)
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        problem(api.call("root", "DELETE", f"/items/{item_id}", headers=headers), 403, "forbidden")
    host = api.base.removeprefix("http://")
    r = api.call("root", "DELETE", f"/items/{item_id}", headers={"Origin": f"http://{host}"})
    assert r.status_code == 200, r.text
