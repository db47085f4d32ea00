"""Several `workclaim serve` processes behind Debian's HAProxy, for the multi-instance tests.

`Instance` is one `workclaim serve --no-auth` process on a free loopback port (restartable,
killable). `cluster()` starts N of them on one store and an `haproxy` in front (round-robin,
health checks on `/readyz`, a config written here), and waits until HAProxy sees every instance
up. `haproxy` comes from the Debian package (.ci/services.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.http_process import free_port
from tests.support.missing import unavailable

START_SECONDS = 30.0
POLL = 0.05  # readiness polls of processes we started: there is nothing to wait on

HAPROXY_CONFIG = """\
global
    maxconn 8192
    stats socket {socket} mode 600 level admin
    log stderr format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlog-normal  # log errors and anomalies only
    maxconn 8192
    timeout connect 2s
    timeout client 120s
    timeout server 120s   # longer than any long-poll the service allows (--max-wait)
    timeout check 5s      # a busy instance is slow, not dead: do not take it out for that
    retries 2
    option redispatch     # a connection refused by one instance is retried on another
    http-reuse never      # see "Idle connections" in docs/deployment.md

frontend workclaim
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk
    # HTTP/1.1 with a Host: without tokens the service answers only loopback host names
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check inter 500ms fall 3 rise 1 maxconn 4096
{servers}
"""


class Instance:
    """`workclaim serve --no-auth` on a loopback port of its own; its output goes to `log`."""

    def __init__(
        self,
        db: str,
        log: Path,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.args = list(args)
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers `/healthz`."""
        argv = [sys.executable, "-m", "workclaim", "serve", "--db", self.db, "--no-auth"]
        argv += ["--port", str(self.port), "--log-level", "warning", *self.args]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env={**os.environ, **self.env}, stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"workclaim serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(POLL)
        raise RuntimeError(f"workclaim serve did not answer within {START_SECONDS:g} s")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight requests lose their answers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def haproxy_binary() -> str | None:
    """Debian's haproxy, if installed."""
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )


@dataclass
class Cluster:
    """The instances, HAProxy's front URL, and its admin socket."""

    instances: list[Instance]
    url: str
    admin_socket: Path

    def states(self) -> dict[str, str]:
        """HAProxy's view of each instance: {"i0": "UP", "i1": "DOWN", ...}."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        rows = b"".join(chunks).decode().splitlines()
        header = rows[0].lstrip("# ").split(",")
        states = {}
        for row in rows[1:]:
            fields = dict(zip(header, row.split(","), strict=False))
            if fields.get("pxname") == "instances" and fields.get("svname", "").startswith("i"):
                states[fields["svname"]] = fields["status"].split()[0]
        return states

    def wait_for(self, wanted: dict[str, str], seconds: float = 30.0) -> None:
        """Wait until HAProxy's health checks show these states."""
        deadline = time.monotonic() + seconds
        while True:
            states = self.states()
            if all(states.get(name) == state for name, state in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy shows {states}, not {wanted}")
            time.sleep(POLL)


@contextmanager
def cluster(
    db: str,
    directory: Path,
    *,
    instances: int = 2,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """`instances` services on `db` behind one HAProxy; everything is stopped afterwards."""
    binary = haproxy_binary()
    if binary is None:
        unavailable("haproxy is not installed (.ci/services.sh installs the Debian package)")
    with ExitStack() as stack:
        members = []
        for i in range(instances):
            member = Instance(db, directory / f"serve-{i}.log", args, env)
            stack.callback(member.stop)
            member.start()
            members.append(member)
        # A unix socket's path must stay short (108 bytes): not under pytest's tmp_path.
        sockets = Path(tempfile.mkdtemp(prefix="wc-haproxy-"))
        stack.callback(shutil.rmtree, sockets, ignore_errors=True)
        port = free_port()
        servers = "\n".join(f"    server i{i} {m.url[7:]}" for i, m in enumerate(members))
        config = directory / "haproxy.cfg"
        config.write_text(
            HAPROXY_CONFIG.format(socket=sockets / "admin.sock", port=port, servers=servers)
        )
        log = (directory / "haproxy.log").open("ab")
        stack.callback(log.close)
        proxy = subprocess.Popen([binary, "-f", str(config), "-db"], stdout=log, stderr=log)
        stack.callback(_stop, proxy)
        front = Cluster(members, f"http://127.0.0.1:{port}", sockets / "admin.sock")
        deadline = time.monotonic() + START_SECONDS
        while not front.admin_socket.exists():
            if proxy.poll() is not None or time.monotonic() > deadline:
                why = (directory / "haproxy.log").read_text()
                raise RuntimeError(f"haproxy did not start: {why}")
            time.sleep(POLL)
        front.wait_for({f"i{i}": "UP" for i in range(instances)})
        yield front


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
