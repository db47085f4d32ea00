"""The HTTP service's status codes, problem documents and auth, against a live uvicorn server.

Tokens: alice works on and enqueues to every queue, bob works on `jobs` only, `producer` may
only enqueue, `root` is admin. Each test uses its own queue names on one shared server and store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.http_transport import running_server
from tests.support.served_api import PROBLEM, Api, problem, served_api
from workclaim import AsyncQueue, Settings
from workclaim.server import ServerConfig, create_app


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    scopes = {
        "alice": ["work:*", "enqueue"],
        "bob": ["work:jobs"],
        "producer": ["enqueue:jobs"],
        "root": ["admin"],
    }
    with served_api(
        tmp_path_factory.mktemp("api"),
        scopes,
        settings=Settings(max_payload_bytes=4096),
        max_body_bytes=16 * 1024,
        max_batch=10,
        max_lease=600,
        max_wait=30,
        max_longpolls_per_token=2,
    ) as api:
        yield api


def enqueue(c: httpx.Client, queue: str, payload: Any = 1) -> int:
    r = c.post(f"/queues/{queue}/items", json={"payload": payload})
    assert r.status_code == 201, r.text
    return int(r.json()["ids"][0])


def test_the_happy_path_codes(api: Api) -> None:
    with api.http("alice") as alice, api.http("root") as root:
        item_id = enqueue(alice, "jobs", {"secret": "payload"})
        batch = alice.post("/queues/jobs/items", json={"payloads": [1, 2], "priority": 5})
        assert batch.status_code == 201 and len(batch.json()["ids"]) == 2
        r = alice.post("/worker/claim", json={"queue": "jobs", "lease_seconds": 30})
        assert r.status_code == 200
        [lease] = r.json()["leases"]
        assert lease["id"] == item_id and lease["worker"] == "alice"
        assert isinstance(lease["id"], int) and isinstance(lease["token"], int)
        beat = alice.post("/worker/heartbeat", json={"id": item_id, "token": lease["token"]})
        assert beat.status_code == 200 and beat.json()["token"] == lease["token"]
        done = alice.post("/worker/complete", json={"id": item_id, "token": lease["token"]})
        assert done.json() == {"id": item_id, "status": "done"}
        got = alice.get(f"/items/{item_id}")
        assert got.status_code == 200 and got.json()["status"] == "done"
        assert "token" not in got.json()
        nxt = alice.get("/worker/next", params={"queue": "jobs", "limit": 2})
        assert nxt.status_code == 200 and len(nxt.json()["leases"]) == 2
        assert nxt.headers["cache-control"] == "no-store"
        for held in nxt.json()["leases"]:
            r = alice.post("/worker/release", json={"id": held["id"], "token": held["token"]})
            assert r.json()["status"] == "queued"
        empty = alice.post("/worker/claim", json={"queue": "other"})
        assert empty.status_code == 204 and empty.content == b""
        stats = root.get("/queues/jobs/stats")
        assert stats.status_code == 200 and stats.json()["queued"] == 2
        assert root.get("/healthz").json() == {"status": "ok"}
        assert root.get("/readyz").json() == {"status": "ready"}
        metrics = root.get("/metrics")
        assert metrics.status_code == 200 and "workclaim_claims_total" in metrics.text
        assert "openapi" in root.get("/openapi.json").json()


def test_fail_cancel_and_requeue(api: Api) -> None:
    with api.http("alice") as alice, api.http("root") as root:
        item_id = enqueue(alice, "fails")
        [lease] = alice.post("/worker/claim", json={"queue": "fails", "limit": 10}).json()["leases"]
        r = alice.post(
            "/worker/fail",
            json={"id": lease["id"], "token": lease["token"], "error": "boom", "retry": False},
        )
        assert r.json()["status"] == "dead"
        problem(alice.delete(f"/items/{item_id}"), 409, "invalid-state")
        problem(alice.post(f"/items/{item_id}/requeue"), 403, "forbidden")
        r = root.post(f"/items/{item_id}/requeue", json={"max_attempts": 2})
        assert r.json() == {"id": item_id, "status": "queued"}
        assert alice.delete(f"/items/{item_id}").json()["status"] == "cancelled"
        assert root.post("/queues/fails/purge", json={"older_than": 0}).json()["deleted"] >= 1


def test_lease_conflicts_are_409(api: Api) -> None:
    with api.http("alice") as alice, api.http("bob") as bob:
        item_id = enqueue(alice, "conflicts")
        [lease] = alice.post("/worker/claim", json={"queue": "conflicts"}).json()["leases"]
        ref = {"id": lease["id"], "token": lease["token"]}
        # another worker's lease: bob presents alice's id and token (tokens are guessable)
        for path in ("complete", "heartbeat", "release"):
            problem(bob.post(f"/worker/{path}", json=ref), 409, "lease-lost")
        problem(bob.post("/worker/fail", json=ref | {"error": "x"}), 409, "lease-lost")
        # naming someone else as the worker is refused too
        problem(alice.post("/worker/complete", json=ref | {"worker": "bob"}), 409, "lease-lost")
        problem(
            alice.post("/worker/claim", json={"queue": "jobs", "worker": "bob"}), 403, "forbidden"
        )
        assert alice.post("/worker/complete", json=ref).status_code == 200
        stale = alice.post("/worker/heartbeat", json=ref)
        problem(stale, 409, "lease-lost")
        problem(alice.post("/worker/release", json=ref), 409, "lease-lost")
        assert alice.get(f"/items/{item_id}").json()["status"] == "done"


def test_auth_is_required_and_scoped(api: Api) -> None:
    with api.http(None) as anon, api.http("producer") as producer:
        r = anon.post("/worker/claim", json={"queue": "jobs"})
        problem(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        bad = anon.post(
            "/worker/claim", json={"queue": "jobs"}, headers={"Authorization": "Bearer wc_nope"}
        )
        problem(bad, 401, "unauthorized")
        basic = anon.get("/items/1", headers={"Authorization": "Basic YWxpY2U6eA=="})
        problem(basic, 401, "unauthorized")
        problem(anon.get("/metrics"), 401, "unauthorized")
        item_id = enqueue(producer, "jobs")
        problem(producer.post("/worker/claim", json={"queue": "jobs"}), 403, "forbidden")
        problem(producer.post("/queues/other/items", json={"payload": 1}), 403, "forbidden")
        problem(producer.get("/queues/jobs/stats"), 403, "forbidden")
        problem(
            producer.post("/worker/complete", json={"id": item_id, "token": 1}), 403, "forbidden"
        )
        assert producer.get(f"/items/{item_id}").status_code == 200
    with api.http("bob") as bob:
        problem(bob.post("/worker/claim", json={"queue": "private"}), 403, "forbidden")
        # an item on a queue outside bob's scopes is not revealed
        with api.http("alice") as alice:
            hidden = enqueue(alice, "private")
            visible = enqueue(alice, "jobs")
        problem(bob.get(f"/items/{hidden}"), 404, "item-not-found")
        assert bob.get(f"/items/{visible}").status_code == 200
        problem(bob.delete(f"/items/{visible}"), 403, "forbidden")


def test_bad_requests(api: Api) -> None:
    with api.http("alice") as alice, api.http("root") as root:
        problem(alice.get("/items/999999"), 404, "item-not-found")
        problem(alice.get("/nowhere"), 404, "not-found")
        problem(alice.put("/worker/claim"), 405, "method-not-allowed")
        bad_json = alice.post(
            "/worker/claim", content=b"{nope", headers={"content-type": "application/json"}
        )
        problem(bad_json, 400, "bad-request")
        not_utf8 = alice.post(
            "/worker/claim",
            content=b'{"queue": "\xff"}',
            headers={"content-type": "application/json"},
        )
        assert not_utf8.status_code in (400, 422) and not_utf8.headers["content-type"] == PROBLEM
        doc = problem(
            alice.post("/worker/claim", json={"queue": "jobs", "limit": "5"}),
            422,
            "validation-error",
        )
        assert "input" not in str(doc["errors"])  # the input (maybe a payload) is never echoed
        problem(
            alice.post("/worker/claim", json={"queue": "jobs", "limit": 11}),
            422,
            "validation-error",
        )
        problem(
            alice.post("/worker/claim", json={"queue": "jobs", "lease_seconds": 601}),
            422,
            "validation-error",
        )
        problem(alice.post("/worker/claim", json={}), 422, "validation-error")
        problem(alice.post("/worker/claim", json={"queue": "bad name"}), 422, "validation-error")
        problem(
            alice.post("/queues/jobs/items", json={"payload": 1, "payloads": [2]}),
            422,
            "validation-error",
        )
        problem(
            alice.post("/queues/jobs/items", json={"payloads": list(range(11))}),
            422,
            "validation-error",
        )
        problem(
            alice.post("/queues/jobs/items", json={"payload": "\u0000"}), 422, "validation-error"
        )
        problem(root.get("/items/0"), 422, "validation-error")
        # the clock override is off on this server: the header is ignored
        assert (
            root.get("/queues/jobs/stats", headers={"X-Workclaim-Now": "junk"}).status_code == 200
        )


def test_body_and_payload_caps_are_413(api: Api) -> None:
    with api.http("alice") as alice:
        doc = problem(
            alice.post("/queues/jobs/items", json={"payload": "x" * 5000}), 413, "payload-too-large"
        )
        assert "xxxx" not in doc["detail"]
        huge = b'{"payload": "' + b"x" * 20_000 + b'"}'
        problem(
            alice.post(
                "/queues/jobs/items", content=huge, headers={"content-type": "application/json"}
            ),
            413,
            "body-too-large",
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            yield b'{"payload": "'
            for _ in range(40):
                yield b"x" * 1000
            yield b'"}'

        chunked = alice.post(
            "/queues/jobs/items", content=chunks(), headers={"content-type": "application/json"}
        )
        problem(chunked, 413, "body-too-large")


@pytest.mark.timeout(60)
def test_long_polls_are_capped_per_token_and_woken_by_an_enqueue(api: Api) -> None:
    results: list[httpx.Response] = []
    with api.http("root") as root, api.http("alice") as alice:
        waiting: list[threading.Thread] = []

        def alice_poll() -> None:
            with api.http("alice") as c:
                results.append(c.post("/worker/claim", json={"queue": "lp", "wait": 30}))

        for _ in range(2):
            t = threading.Thread(target=alice_poll)
            t.start()
            waiting.append(t)
        deadline = time.monotonic() + 20
        while "workclaim_longpolls_waiting 2.0" not in root.get("/metrics").text:
            assert time.monotonic() < deadline, "the long-polls never started waiting"
            time.sleep(0.02)
        third = alice.post("/worker/claim", json={"queue": "lp", "wait": 30})
        problem(third, 429, "too-many-requests")
        assert third.headers["retry-after"] == "1"
        enqueued = root.post("/queues/lp/items", json={"payloads": [1, 2]})
        assert enqueued.status_code == 201
        for t in waiting:
            t.join(30)
    assert sorted(r.status_code for r in results) == [200, 200]


def test_store_unavailable_is_503(tmp_path: Path) -> None:
    import asyncio

    queue = AsyncQueue(f"sqlite:///{tmp_path / 'w.db'}")
    app = create_app(queue, ServerConfig(no_auth=True))
    with running_server(app) as base, httpx.Client(base_url=base) as c:
        queue.sync.close()  # the store is gone from under the server
        r = c.post("/worker/claim", json={"queue": "jobs"})
        problem(r, 503, "backend-unavailable")
        assert r.headers["retry-after"] == "1"
        problem(c.get("/readyz"), 503, "backend-unavailable")
        assert c.get("/healthz").status_code == 200
    asyncio.run(queue.close())


# -- the renamed claim fields (`max` is `limit`, `lease` is `lease_seconds`) ------------------
def test_claims_with_the_old_field_names_work_and_are_marked_deprecated(api: Api) -> None:
    with api.http("alice") as alice:
        for n in range(4):
            enqueue(alice, "renamed", n)
        current = alice.post("/worker/claim", json={"queue": "renamed", "limit": 1})
        assert current.status_code == 200 and "deprecation" not in current.headers
        old = alice.post("/worker/claim", json={"queue": "renamed", "max": 2, "lease": 40})
        assert old.status_code == 200 and old.headers["deprecation"] == "true"
        assert 'rel="deprecation"' in old.headers["link"]
        leases = old.json()["leases"]
        assert len(leases) == 2 and {x["lease_seconds"] for x in leases} == {40.0}
        nxt = alice.get("/worker/next", params={"queue": "renamed", "max": 1, "lease": 50})
        assert nxt.status_code == 200 and nxt.headers["deprecation"] == "true"
        assert nxt.headers["cache-control"] == "no-store"
        [got] = nxt.json()["leases"]
        assert got["lease_seconds"] == 50.0
        fused = alice.post(
            "/worker/complete-and-claim",
            json={"done": [{"id": got["id"], "token": got["token"]}], "queue": "renamed", "max": 0},
        )
        assert fused.json() == {"lost": [], "leases": []} and fused.headers["deprecation"] == "true"
        empty = alice.post("/worker/claim", json={"queue": "renamed-none", "max": 1})
        assert empty.status_code == 204 and empty.headers["deprecation"] == "true"


def test_an_old_and_a_new_name_for_one_field_is_422(api: Api) -> None:
    with api.http("alice") as alice:
        enqueue(alice, "renamed-both")
        for path, body in [
            ("/worker/claim", {"queue": "renamed-both", "max": 1, "limit": 1}),
            ("/worker/claim", {"queue": "renamed-both", "lease": 5, "lease_seconds": 5}),
            ("/worker/complete-and-claim", {"queue": "renamed-both", "max": 0, "limit": 0}),
        ]:
            doc = problem(alice.post(path, json=body), 422, "validation-error")
            assert "is its deprecated name" in doc["detail"], doc
        for params in [{"max": 1, "limit": 1}, {"lease": 5, "lease_seconds": 5}]:
            r = alice.get("/worker/next", params={"queue": "renamed-both", **params})
            assert "is its deprecated name" in problem(r, 422, "validation-error")["detail"]
        claimed = alice.post("/worker/claim", json={"queue": "renamed-both"})  # nothing was taken
        assert len(claimed.json()["leases"]) == 1
