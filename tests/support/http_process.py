"""`workclaim serve` as a real subprocess on a free loopback port, for tests and benchmarks that
need the server in a process of its own (its own GIL, its own CPU)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_process(
    db: str,
    *args: str,
    startup: float = 30.0,
    verify: Any = True,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[str]:
    """Run `workclaim serve --db DB ARGS...` until the block ends; yields its base URL (https
    when ARGS has --ssl-certfile; `verify` is then httpx's verify for the readiness check)."""
    port = free_port()
    cmd = [sys.executable, "-m", "workclaim", "serve", "--db", db, "--port", str(port)]
    cmd += ["--log-level", "warning", *args]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=preexec_fn
    )
    scheme = "https" if "--ssl-certfile" in args else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"workclaim serve exited: {proc.communicate()[1].decode()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1, verify=verify).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("workclaim serve did not start in time")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
