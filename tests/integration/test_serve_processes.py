"""`workclaim serve --processes N`: N server processes on one port under a supervising parent. A
child that dies is reported and replaced; SIGTERM stops every one of them and then the parent; a
child that cannot start stops the whole with exit code 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.http_process import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
POLL = 0.05  # polls of processes we started: there is nothing to wait on


def server_children(parent: int) -> set[int]:
    """The parent's children that run a server (not multiprocessing's resource tracker)."""
    try:
        text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
    except FileNotFoundError:
        return set()
    found = set()
    for pid in map(int, text.split()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            found.add(pid)
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(what: str, condition: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(POLL)


@contextmanager
def serve(
    tmp_path: Path, *args: str, before: tuple[str, ...] = ()
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """`workclaim BEFORE serve --no-auth ARGS` on a free port: (the process, its URL, its log
    file)."""
    port = free_port()
    log = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "workclaim", *before, "serve", "--no-auth", "--port", str(port)]
    argv += ["--db", f"sqlite:///{tmp_path / 'w.db'}", "--log-level", "warning", *args]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out)
    try:
        yield proc, f"http://127.0.0.1:{port}", log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_processes_share_a_port_a_dead_one_is_replaced_and_sigterm_stops_all(
    tmp_path: Path,
) -> None:
    with serve(tmp_path, "--processes", "2") as (proc, url, log):
        wait_until("it answers", lambda: answers(url) and len(server_children(proc.pid)) == 2)
        first = server_children(proc.pid)
        with httpx.Client(base_url=url, timeout=10) as c:
            ids = c.post("/queues/p/items", json={"payloads": [1, 2]}).json()["ids"]
            leases = c.post("/worker/claim", json={"queue": "p", "limit": 2}).json()["leases"]
            assert sorted(lease["id"] for lease in leases) == sorted(ids)

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            "a replacement runs",
            lambda: len(children := server_children(proc.pid)) == 2 and victim not in children,
        )
        wait_until(
            "the death is logged", lambda: f"server process {victim} died" in log.read_text()
        )
        assert "signal SIGKILL" in log.read_text()
        assert answers(url)
        every = server_children(proc.pid) | first

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        assert not [pid for pid in every if alive(pid)], "a server process outlived the parent"
        assert not answers(url)


def test_a_process_that_cannot_start_stops_the_whole(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    args = ["--processes", "2", "--ssl-certfile", missing, "--ssl-keyfile", missing]
    with serve(tmp_path, *args) as (proc, _, log):
        assert proc.wait(60) == 1, log.read_text()
    assert "could not start" in log.read_text()


def test_the_processes_log_as_the_command_line_asked(tmp_path: Path) -> None:
    """`workclaim --log-json serve --processes 2`: the server processes' own lines are JSON too."""
    args = ("--processes", "2", "--log-level", "info")
    with serve(tmp_path, *args, before=("--log-json",)) as (proc, url, log):
        wait_until("it answers", lambda: answers(url) and len(server_children(proc.pid)) == 2)
        children = server_children(proc.pid)
        wanted = {f"Started server process [{pid}]" for pid in children}
        wait_until("each process logged", lambda: wanted <= set(_messages(log)))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def _messages(log: Path) -> list[str]:
    """The messages of the log's JSON lines (the --no-auth warning is a plain print)."""
    lines = [x for x in log.read_text().splitlines() if x and not x.startswith("WARNING: --no")]
    return [json.loads(x)["message"] for x in lines]
