"""Safe by default: no authentication only when asked for, the same-origin rule on every route
that changes state, loopback `Host` names without authentication, a tokens file that fails
closed, expiring tokens, and the security headers. A live uvicorn server over a SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.http_transport import running_server
from workclaim import AsyncQueue
from workclaim.errors import ConfigError
from workclaim.server import ServerConfig, create_app
from workclaim.server.auth import TokenStore, new_token, token_line

PROBLEM = "application/problem+json"
T = "urn:workclaim:problem:"


def private_file(path: Path, text: str) -> None:
    """Write a tokens file with mode 0600 (the test controls when the server reads it)."""
    path.write_text(text)
    path.chmod(0o600)


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    doc: dict[str, Any] = response.json()
    assert doc["type"] == T + slug
    return doc


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start `create_app` over a fresh SQLite file with a config; yields (base URL, queue)."""
    queues: list[AsyncQueue] = []

    def start(config: ServerConfig) -> Any:
        queue = AsyncQueue(f"sqlite:///{tmp_path / f'w{len(queues)}.db'}")
        queues.append(queue)
        return running_server(create_app(queue, config)), queue

    yield start
    for queue in queues:
        asyncio.run(queue.close())


def test_create_app_without_a_config_refuses_to_run_open(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no_auth=True"):
        create_app(f"sqlite:///{tmp_path / 'w.db'}")
    with pytest.raises(ConfigError, match="needs bearer tokens"):
        ServerConfig()
    with pytest.raises(ConfigError, match="not both"):
        ServerConfig(tokens=TokenStore(lines=token_line(new_token(), "a", ["work"])), no_auth=True)


def test_without_auth_only_loopback_host_names_are_served(serve: Any) -> None:
    server, queue = serve(ServerConfig(no_auth=True))
    with server as base, httpx.Client(base_url=base) as c:
        port = base.rsplit(":", 1)[1]
        asyncio.run(queue.enqueue("jobs", 1))
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "[::2]"):
            r = c.get("/worker/next", params={"queue": "jobs"}, headers={"Host": host})
            problem(r, 403, "forbidden")
        assert asyncio.run(queue.stats("jobs")).queued == 1  # the rebinding page claimed nothing
        for host in (f"localhost:{port}", f"127.0.0.2:{port}", f"[::1]:{port}", "LOCALHOST"):
            assert c.get("/healthz", headers={"Host": host}).status_code == 200, host


def test_with_auth_any_host_name_is_served(serve: Any) -> None:
    token = new_token()
    server, _ = serve(ServerConfig(tokens=TokenStore(lines=token_line(token, "a", ["admin"]))))
    with server as base, httpx.Client(base_url=base) as c:
        headers = {"Host": "workclaim.internal", "Authorization": f"Bearer {token}"}
        assert c.get("/queues", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "browser",
    [
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "image"},
        {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "image"},  # another port
        {"Referer": "http://evil.example/page.html"},  # a browser without fetch metadata
        {"Origin": "null"},
    ],
    ids=["cross-site", "same-site", "referer", "null-origin"],
)
def test_a_cross_site_get_that_claims_is_refused(serve: Any, browser: dict[str, str]) -> None:
    server, queue = serve(ServerConfig(no_auth=True))
    with server as base, httpx.Client(base_url=base) as c:
        asyncio.run(queue.enqueue_many("jobs", [1, 2, 3]))
        r = c.get("/worker/next", params={"queue": "jobs", "limit": 100}, headers=browser)
        problem(r, 403, "forbidden")
        assert asyncio.run(queue.stats("jobs")).claimed == 0
        # Pages that change nothing may still be opened from a link on another site.
        for path in ("/", "/ui/app.js", "/healthz"):
            assert c.get(path, headers=browser).status_code == 200, path
        same = c.get(
            "/worker/next", params={"queue": "jobs"}, headers={"Sec-Fetch-Site": "same-origin"}
        )
        assert same.status_code == 200


def test_a_tokens_file_that_breaks_makes_every_call_503(serve: Any, tmp_path: Path) -> None:
    token = new_token()
    path = tmp_path / "tokens"
    private_file(path, token_line(token, "alice", ["enqueue"]) + "\n")
    server, _ = serve(ServerConfig(tokens=TokenStore(path)))
    with server as base, httpx.Client(base_url=base) as c:
        auth = {"Authorization": f"Bearer {token}"}
        assert c.post("/queues/q/items", json={"payload": 1}, headers=auth).status_code == 201
        private_file(path, "sha256:nothex alice enqueue\n")  # a botched revocation
        r = c.post("/queues/q/items", json={"payload": 1}, headers=auth)
        problem(r, 503, "service-unavailable")
        assert r.headers["retry-after"]
        private_file(path, "")  # fixed: the token is revoked
        problem(c.post("/queues/q/items", json={"payload": 1}, headers=auth), 401, "unauthorized")


def test_an_expired_token_gets_401(serve: Any) -> None:
    old, fresh = new_token(), new_token()
    past = datetime.now(UTC) - timedelta(minutes=1)
    lines = token_line(old, "old", ["admin"], past) + "\n" + token_line(fresh, "new", ["admin"])
    server, _ = serve(ServerConfig(tokens=TokenStore(lines=lines)))
    with server as base, httpx.Client(base_url=base) as c:
        r = c.get("/queues", headers={"Authorization": f"Bearer {old}"})
        assert problem(r, 401, "unauthorized")["detail"] == "the bearer token has expired"
        assert c.get("/queues", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_docs_pages_are_off_unless_asked_for_and_answers_carry_a_csp(serve: Any) -> None:
    server, _ = serve(ServerConfig(no_auth=True))
    with server as base, httpx.Client(base_url=base) as c:
        for path in ("/docs", "/redoc"):
            problem(c.get(path), 404, "not-found")
        assert "paths" in c.get("/openapi.json").json()
        for r in (c.get("/healthz"), c.get("/openapi.json"), c.get("/items/1")):
            assert r.headers["content-security-policy"].startswith("default-src 'none'")
            assert r.headers["x-content-type-options"] == "nosniff"
            assert "strict-transport-security" not in r.headers  # plain HTTP
        dashboard_csp = c.get("/").headers["content-security-policy"]
        assert "script-src 'self'" in dashboard_csp
    server, _ = serve(ServerConfig(no_auth=True, api_docs=True))
    with server as base, httpx.Client(base_url=base) as c:
        r = c.get("/docs")
        assert r.status_code == 200 and "cdn.jsdelivr.net" in r.headers["content-security-policy"]
