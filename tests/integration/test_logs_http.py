"""Bearer tokens are logged nowhere: not by the server at its most verbose, not by the client's
HTTP stack at DEBUG, not by `stats`/`top` when the server refuses them. Checked on raw output,
without workclaim's redaction, so the test proves the token is never written, not that it is
masked afterwards."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.http_process import free_port
from workclaim.client import AccessDenied, Client


def _token(tokens: Path, *scopes: str) -> str:
    argv = [sys.executable, "-m", "workclaim", "token", "create", "ops", *scopes]
    created = subprocess.run(
        [*argv, "--append-to", str(tokens)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return next(x for x in created.stdout.splitlines() if x.startswith("token: ")).split()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, Callable[[], str]]]:
    """`workclaim serve` at uvicorn's trace level and workclaim's debug level; yields (URL, an
    admin token, a function that stops the server and returns all it wrote)."""
    tokens = tmp_path / "tokens"
    token = _token(tokens, "enqueue", "work:*", "admin")
    output = tmp_path / "server.log"
    port = free_port()
    cmd = [sys.executable, "-m", "workclaim", "--log-level", "debug", "serve"]
    cmd += ["--db", f"sqlite:///{tmp_path / 'w.db'}", "--port", str(port)]
    cmd += ["--tokens", str(tokens), "--log-level", "trace"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKCLAIM_")}
    with output.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, output.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

        def stop() -> str:
            proc.terminate()
            proc.wait(timeout=30)
            return output.read_text(errors="replace")

        yield base, token, stop
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture
def client_log() -> Iterator[io.StringIO]:
    """Every record of the client process at DEBUG (httpx and httpcore included), unredacted."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    saved = root.level, {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in saved[1]:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def test_bearer_tokens_are_never_written_to_any_log(
    server: tuple[str, str, Callable[[], str]], client_log: io.StringIO
) -> None:
    base, token, stop = server
    wrong = "wc_" + "N0tAV4lidT0kenAtAll" * 2
    with Client(base, token=token) as q:
        q.enqueue("jobs", {"n": 1})
        q.enqueue("jobs", {"n": 2})
        [lease] = q.claim("jobs", worker="ops")
        q.complete(q.heartbeat(lease))
        [lease] = q.claim("jobs", worker="ops")
        q.fail(lease, "boom", retry=False)
        assert q.stats("jobs").dead == 1
    with Client(base, token=wrong, retries=0) as q, pytest.raises(AccessDenied):
        q.stats("jobs")
    refused = subprocess.run(
        [sys.executable, "-m", "workclaim", "--log-level", "debug", "stats", "-q", "jobs"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "WORKCLAIM_SERVER": base, "WORKCLAIM_TOKEN": wrong},
    )
    assert refused.returncode == 1 and "\nerror: " in refused.stderr
    client_side = client_log.getvalue()
    assert "HTTP Request: POST" in client_side  # the client's HTTP stack did log, at DEBUG
    server_side = stop()
    assert '"GET /queues/jobs/stats HTTP/1.1" 401' in server_side  # access lines were on
    assert "ASGI" in server_side  # uvicorn's trace level was on
    for secret in (token, token[3:], wrong, wrong[3:]):
        assert secret not in client_side
        assert secret not in server_side
        assert secret not in refused.stdout + refused.stderr
