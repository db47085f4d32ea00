"""The hot worker routes answer the same with the server's fast path as through FastAPI: every
request the fast path hands on (another content type, a body that does not validate, a refused
token, an oversize body) gets FastAPI's answer, and errors raised by the route are the same
problem documents. Against a live server over a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.served_api import Api, problem, served_api

PATHS = ["/worker/claim", "/worker/complete", "/worker/complete-and-claim"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    scopes = {"alice": ["work:*", "enqueue"], "bob": ["work:jobs"]}
    with served_api(
        tmp_path_factory.mktemp("fastpath"), scopes, max_batch=10, max_body_bytes=65_536
    ) as api:
        yield api


def test_a_json_body_with_a_charset_is_served(api: Api) -> None:
    with api.http("alice") as alice:
        alice.post("/queues/charset/items", json={"payload": 1}).raise_for_status()
        r = alice.post(
            "/worker/claim",
            content=b'{"queue": "charset"}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert r.status_code == 200, r.text
        [lease] = r.json()["leases"]
        r = alice.post("/worker/complete", json={"id": lease["id"], "token": lease["token"]})
        assert r.json() == {"id": lease["id"], "status": "done"}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [(b"{not json", 400, "bad-request"), (b"[]", 422, "validation-error"), (b"", 422, None)],
)
def test_a_body_that_does_not_validate_gets_fastapis_answer(
    api: Api, path: str, body: bytes, status: int, slug: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    r = api.call("alice", "POST", path, content=body, headers=headers)
    problem(r, status, slug or ("validation-error" if status == 422 else "bad-request"))


@pytest.mark.parametrize("path", PATHS)
def test_a_refused_token_is_401_and_a_foreign_queue_403(api: Api, path: str) -> None:
    body = {"queue": "jobs", "id": 1, "token": 1}
    for headers in ({}, {"Authorization": "Bearer wc_not-a-token"}, {"Authorization": "Basic x"}):
        r = httpx.post(api.base + path, json=body, headers=headers)
        problem(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="workclaim"'
    if path != "/worker/complete":
        problem(api.call("bob", "POST", path, json={"queue": "not-bobs"}), 403, "forbidden")


def test_a_lost_lease_and_an_oversize_body_are_the_usual_problems(api: Api) -> None:
    with api.http("alice") as alice:
        r = alice.post("/worker/complete", json={"id": 99_999, "token": 5})
        assert r.status_code in (404, 409), r.text
        assert r.headers["content-type"] == "application/problem+json"
        chunks = (b'{"queue": "big", "worker": "' + b"x" * 1_000 for _ in range(20_000))
        r = alice.post(
            "/worker/claim", content=chunks, headers={"Content-Type": "application/json"}
        )
        problem(r, 413, "body-too-large")
