"""A web page on another origin cannot make a `--no-auth` server claim work: headless Chromium
loads a page that embeds `<img src=".../worker/next?limit=1000&lease_seconds=86400">`, as a
hostile site the developer happens to open would, and the store must still hold every item
unclaimed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.http_process import serve_process
from workclaim import Queue

pytestmark = pytest.mark.timeout(120)

ITEMS = 5


def _hostile_page(target: str) -> bytes:
    claim = f"{target}/worker/next?queue=jobs&limit=1000&lease_seconds=86400"
    return (
        f'<!doctype html><title>cat pictures</title><img id="x" src="{claim}">'
        f'<img id="y" src="{claim}&wait=0">'
    ).encode()


@pytest.fixture
def hostile_site() -> Iterator[tuple[int, dict[str, bytes]]]:
    """An HTTP server on 127.0.0.1 serving whatever page the test puts in `pages["/"]`."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0], b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], pages
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("site_host", ["localhost", "127.0.0.1"], ids=["cross-site", "same-site"])
def test_a_hostile_page_claims_nothing(
    page: Any, tmp_path: Path, hostile_site: tuple[int, dict[str, bytes]], site_host: str
) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    with Queue(db) as q:
        q.enqueue_many("jobs", list(range(ITEMS)))
    port, pages = hostile_site
    with serve_process(db, "--no-auth") as base:
        pages["/"] = _hostile_page(base)
        page.goto(f"http://{site_host}:{port}/")
        # Both images have been fetched (and failed to decode) once `complete` is true.
        page.wait_for_function("[...document.images].every(i => i.complete)")
        with Queue(db) as q:
            stats = q.stats("jobs")
        assert (stats.queued, stats.claimed) == (ITEMS, 0)
