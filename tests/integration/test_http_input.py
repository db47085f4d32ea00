"""What the HTTP service accepts and returns (issue 13, section 4), against a live uvicorn server
over a real SQLite store: nothing a producer stores can break claims, no lease is granted that
the answer cannot carry, caps apply to every way in, listings and histories come in bounded
pages, tokens in a history show only to their holder, and long-poll slots end with their client.

Tokens: alice works on and enqueues to every queue, bob works on `jobs` and `bob-waits`,
`producer` may only enqueue, `root` is admin. Each test uses its own queues on one server.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.served_api import Api, problem, served_api
from workclaim import Settings, Status
from workclaim.backends import NewItem

PAGE_BYTES = 4_096


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    scopes = {
        "alice": ["work:*", "enqueue"],
        "bob": ["work:jobs,bob-waits"],
        "producer": ["enqueue"],
        "root": ["admin"],
    }
    with served_api(
        tmp_path_factory.mktemp("input"),
        scopes,
        settings=Settings(max_payload_bytes=8_192),
        max_batch=10,
        max_lease=600,
        max_wait=600,
        max_longpolls_per_token=2,
        max_longpolls=3,
        max_page_bytes=PAGE_BYTES,
    ) as api:
        yield api


def enqueue(c: httpx.Client, queue: str, payload: Any = 1) -> int:
    r = c.post(f"/queues/{queue}/items", json={"payload": payload})
    assert r.status_code == 201, r.text
    return int(r.json()["ids"][0])


def store_as_an_older_version_did(api: Api, queue: str, payload_text: str) -> int:
    """An item written straight to the store, as a version without today's checks could."""
    item = NewItem(
        payload_text, priority=-1, delay=0.0, run_at=None, max_attempts=5, dedupe_key=None
    )
    [item_id] = api.queue.sync.backend.enqueue(queue, [item])
    return item_id


def nested_text(depth: int) -> str:
    return "[" * depth + "]" * depth


def metric(root: httpx.Client, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", root.get("/metrics").text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


def eventually(
    check: Callable[[], bool],
    what: str,
    explain: Callable[[], object] = lambda: "",
    timeout: float = 20.0,
) -> None:
    """Wait for `check` (a bound only against hanging; no test asserts a duration)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} {explain()}"
        time.sleep(0.02)


def _peek(sock: socket.socket) -> bytes:
    """What the server has answered on a held connection so far (nothing while it waits)."""
    sock.setblocking(False)
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return b""
    finally:
        sock.setblocking(True)


# -- 1. nothing stored can break claims for everyone ---------------------------------------
def test_a_payload_nested_too_deep_is_refused_at_enqueue(api: Api) -> None:
    with api.http("producer") as producer:
        for depth in (65, 300):
            body = '{"payload": ' + nested_text(depth) + "}"
            r = producer.post(
                "/queues/deep/items", content=body, headers={"content-type": "application/json"}
            )
            assert "64 deep" in problem(r, 422, "validation-error")["detail"]
        body = '{"payload": ' + nested_text(100_000) + "}"  # too deep even to parse
        r = producer.post(
            "/queues/deep/items", content=body, headers={"content-type": "application/json"}
        )
        problem(r, 400, "bad-request")
        r = producer.post("/queues/deep/items", json={"payloads": [1, json.loads(nested_text(65))]})
        problem(r, 422, "validation-error")
    with api.http("root") as root:
        assert root.get("/queues/deep/stats").json()["total"] == 0


def test_results_nested_too_deep_are_refused(api: Api) -> None:
    with api.http("alice") as alice:
        item_id = enqueue(alice, "deep-result")
        [lease] = alice.post("/worker/claim", json={"queue": "deep-result"}).json()["leases"]
        r = alice.post(
            "/worker/complete",
            json={"id": item_id, "token": lease["token"], "result": json.loads(nested_text(65))},
        )
        problem(r, 422, "validation-error")
        fused = alice.post(
            "/worker/complete-and-claim",
            json={
                "done": [
                    {"id": item_id, "token": lease["token"], "result": json.loads(nested_text(65))}
                ],
                "queue": "deep-result",
                "limit": 0,
            },
        )
        problem(fused, 422, "validation-error")
        assert alice.get(f"/items/{item_id}").json()["status"] == "claimed"


@pytest.mark.parametrize("path", ["/worker/claim", "/worker/complete-and-claim", "/worker/next"])
def test_leases_an_answer_cannot_carry_are_given_back(api: Api, path: str) -> None:
    queue = "poison-" + path.rsplit("/", 1)[1]
    poison = store_as_an_older_version_did(api, queue, nested_text(300))
    with api.http("alice") as alice:
        others = [enqueue(alice, queue, {"n": n}) for n in range(5)]
        if path == "/worker/next":
            r = alice.get(path, params={"queue": queue, "limit": 10})
        else:
            r = alice.post(path, json={"queue": queue, "limit": 10})
        doc = problem(r, 500, "internal-error")
    for item_id in [poison, *others]:
        item = asyncio.run(api.queue.get(item_id))
        assert (item.status, item.attempts) == (Status.QUEUED, 0), item_id
    assert str(poison) in doc["detail"]


# -- 2. times out of range -----------------------------------------------------------------
@pytest.mark.parametrize(
    "run_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59", "2200-01-01T00:00:01Z"]
)
def test_a_run_at_out_of_range_is_422_and_stores_nothing(api: Api, run_at: str) -> None:
    with api.http("producer") as producer, api.http("root") as root:
        r = producer.post("/queues/far/items", json={"payload": 1, "run_at": run_at})
        assert "run_at" in problem(r, 422, "validation-error")["detail"]
        assert root.get("/queues/far/stats").json()["total"] == 0


# -- 3. a heartbeat obeys the lease cap ----------------------------------------------------
def test_a_heartbeat_cannot_extend_past_the_servers_lease_cap(api: Api) -> None:
    with api.http("alice") as alice:
        item_id = enqueue(alice, "beats")
        [lease] = alice.post("/worker/claim", json={"queue": "beats", "lease_seconds": 30}).json()[
            "leases"
        ]
        key = {"id": item_id, "token": lease["token"]}
        r = alice.post("/worker/heartbeat", json={**key, "extend": 604_800.0})
        assert "600" in problem(r, 422, "validation-error")["detail"]
        assert alice.get(f"/items/{item_id}").json()["expires_at"] == lease["expires_at"]
        assert alice.post("/worker/heartbeat", json={**key, "extend": 600.0}).status_code == 200


# -- 4. bounded pages ----------------------------------------------------------------------
def test_a_listing_page_stops_at_the_byte_budget_and_the_cursor_goes_on(api: Api) -> None:
    with api.http("producer") as producer:
        ids = [enqueue(producer, "fat", {"n": n, "pad": "x" * 1_500}) for n in range(10)]
        seen: list[int] = []
        after: int | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 100} | ({} if after is None else {"after": after})
            page = producer.get("/queues/fat/items", params=params).json()
            assert 1 <= len(page["items"]) <= PAGE_BYTES // 1_500
            seen += [x["id"] for x in page["items"]]
            pages += 1
            after = page["next_after"]
            if after is None:
                break
        assert seen == ids and pages >= 10 * 1_500 // PAGE_BYTES
        big = enqueue(producer, "fat2", {"pad": "y" * 6_000})  # over the budget alone
        page = producer.get("/queues/fat2/items").json()
        assert [x["id"] for x in page["items"]] == [big] and page["next_after"] is None


def test_history_comes_in_pages_oldest_or_newest_first(api: Api) -> None:
    with api.http("alice") as alice:
        item_id = enqueue(alice, "chatty")
        [lease] = alice.post("/worker/claim", json={"queue": "chatty"}).json()["leases"]
        key = {"id": item_id, "token": lease["token"]}
        for _ in range(24):
            assert alice.post("/worker/heartbeat", json=key).status_code == 200
        alice.post("/worker/complete", json=key)
        url = f"/items/{item_id}/history"
        kinds: list[str] = []
        start: int | None = 0
        while start is not None:
            page = alice.get(url, params={"limit": 10, "start": start}).json()
            assert len(page["events"]) <= 10
            kinds += [e["kind"] for e in page["events"]]
            start = page["next_start"]
        assert kinds == ["claimed"] + ["heartbeat"] * 24 + ["completed"]
        newest = alice.get(url, params={"limit": 2, "order": "newest"}).json()
        assert [e["kind"] for e in newest["events"]] == ["completed", "heartbeat"]
        assert newest["next_start"] == 2
        assert alice.get(url, params={"limit": 1001}).status_code == 422


# -- 5. tokens in a history show only to their holder --------------------------------------
def test_history_shows_lease_tokens_only_to_their_holder_and_admins(api: Api) -> None:
    with api.http("alice") as alice:
        item_id = enqueue(alice, "jobs", "secret-work")
        leases = alice.post("/worker/claim", json={"queue": "jobs", "limit": 10}).json()["leases"]
        [token] = [x["token"] for x in leases if x["id"] == item_id]
        for held in leases:
            alice.post("/worker/release", json={"id": held["id"], "token": held["token"]})

    def tokens_seen_by(who: str) -> list[int | None]:
        with api.http(who) as c:
            r = c.get(f"/items/{item_id}/history")
            assert r.status_code == 200, r.text
            return [e["token"] for e in r.json()["events"]]

    assert tokens_seen_by("alice") == [token, token]
    assert tokens_seen_by("root") == [token, token]
    assert tokens_seen_by("producer") == [None, None]
    assert tokens_seen_by("bob") == [None, None]


# -- 6. long-poll slots end with their client, and the server has a cap in all -------------
def hold_longpoll(api: Api, who: str, queue: str) -> socket.socket:
    """A raw connection waiting in a long claim; closing it is a client hanging up."""
    url = urlsplit(api.base)
    body = json.dumps({"queue": queue, "wait": 600}).encode()
    sock = socket.create_connection((url.hostname, url.port))
    sock.sendall(
        b"POST /worker/claim HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {api.tokens[who]}\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def test_a_long_poll_slot_is_freed_when_its_client_hangs_up(api: Api) -> None:
    with api.http("root") as root, api.http("alice") as alice:
        held = [hold_longpoll(api, "alice", "hangup") for _ in range(2)]
        eventually(lambda: metric(root, "workclaim_longpolls_waiting") == 2, "never waited")
        problem(
            alice.post("/worker/claim", json={"queue": "hangup", "wait": 1}),
            429,
            "too-many-requests",
        )
        for sock in held:
            sock.close()
        eventually(
            lambda: metric(root, "workclaim_longpolls_waiting") == 0,
            "the slots outlived their clients",
        )
        again = [
            alice.post("/worker/claim", json={"queue": "hangup", "wait": 0.05}) for _ in range(2)
        ]
        assert [r.status_code for r in again] == [204, 204]
        item_id = enqueue(alice, "hangup")
        # A look of the last waits' claim may still be running in its thread when they end, and
        # take the new item; it gives the item back (AsyncQueue._claim_or_give_back), so this
        # claim waits for that instead of racing it (seen in CI: a 204 here).
        r = alice.post("/worker/claim", json={"queue": "hangup", "wait": 5})
        [lease] = r.json()["leases"]
        assert lease["id"] == item_id and lease["attempt"] == 1


def test_the_server_caps_long_polls_in_all(api: Api) -> None:
    with api.http("root") as root:
        held = [hold_longpoll(api, who, "jobs-cap") for who in ("alice", "alice")]
        held.append(hold_longpoll(api, "bob", "bob-waits"))
        try:
            eventually(
                lambda: metric(root, "workclaim_longpolls_waiting") == 3,
                "never waited",
                lambda: [_peek(s) for s in held],
            )
            r = root.post("/worker/claim", json={"queue": "jobs-cap", "wait": 1})
            assert "at most 3" in problem(r, 429, "too-many-requests")["detail"]
            assert r.headers["retry-after"] == "1"
            quick = root.post("/worker/claim", json={"queue": "jobs-cap"})
            assert quick.status_code == 204  # a claim that does not wait is not a long-poll
        finally:
            for sock in held:
                sock.close()
        eventually(lambda: metric(root, "workclaim_longpolls_waiting") == 0, "never freed")


# -- 7. every lease-lost answer is counted -------------------------------------------------
def test_a_lease_named_for_another_worker_counts_as_lease_lost(api: Api) -> None:
    with api.http("alice") as alice, api.http("root") as root:
        item_id = enqueue(alice, "counted")
        [lease] = alice.post("/worker/claim", json={"queue": "counted"}).json()["leases"]
        before = metric(root, "workclaim_lease_lost_total")
        for path in ("/worker/complete", "/worker/release", "/worker/heartbeat"):
            r = alice.post(path, json={"id": item_id, "token": lease["token"], "worker": "bob"})
            problem(r, 409, "lease-lost")
        r = alice.post(
            "/worker/fail",
            json={"id": item_id, "token": lease["token"], "worker": "bob", "error": "x"},
        )
        problem(r, 409, "lease-lost")
        assert metric(root, "workclaim_lease_lost_total") == before + 4


def test_integers_beyond_64_bits_go_through_claims_exactly(api: Api) -> None:
    """orjson, the wire's codec, cannot write integers beyond 64 bits and would read them as
    floats: the server's answers and the client's requests and readings keep them exact."""
    big = {"n": 2**70, "m": -(2**64), "k": 12345678901234567890123}
    with api.client("alice") as c:
        first_id = c.enqueue("big-ints", big)
        c.enqueue("big-ints", big)
        [first] = c.claim("big-ints", limit=1)
        lost, [second] = c.complete_and_claim([(first, big)], "big-ints", limit=1)
        done = c.get(first_id)
    assert (first.payload, second.payload, done.result, lost) == (big, big, big, [])
