"""The connection layer of a real `workclaim serve` process (httptools): slow and oversized
request heads, requests uvicorn cannot parse, the connection cap, and mutual TLS."""

from __future__ import annotations

import contextlib
import resource
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.http_process import serve_process
from workclaim import Queue

pytestmark = pytest.mark.timeout(180)

PROBLEM = "application/problem+json"
SLOW_CONNECTIONS = 300
FD_LIMIT = 256


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _read_all(sock: socket.socket) -> bytes:
    """What the server wrote until it closed (or reset) the connection."""
    out = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def _head_and_body(answer: bytes) -> tuple[str, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1").lower(), body.decode("utf-8", "replace")


def _ended(sock: socket.socket) -> bool:
    """True if the peer closed or reset this non-blocking socket (reading what it sent)."""
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


class SlowSenders:
    """Connections that each send a request head one byte a second (bounded), from a thread."""

    def __init__(self, port: int, count: int) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.stop = threading.Event()
        for sock in self.socks:
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.send(b"POST /worker/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        for _ in range(120):  # at most two minutes
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.send(b"a")
            if self.stop.wait(1.0):
                return

    def closed_by_server(self) -> int:
        """How many of the connections the server has closed or reset (after any answer)."""
        return sum(_ended(sock) for sock in self.socks)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


def test_a_claim_is_answered_while_hundreds_of_connections_send_a_byte_a_second(
    tmp_path: Path,
) -> None:
    """Under a 256-descriptor limit, 300 slowloris connections neither starve a normal claim
    nor stay open forever (the head deadline and the connection cap close them)."""
    db = f"sqlite:///{tmp_path / 'w.db'}"
    with Queue(db) as q:
        item_id = q.enqueue("jobs", {"n": 1})
    with serve_process(db, "--no-auth", preexec_fn=_limit_descriptors) as base:
        slow = SlowSenders(_port(base), SLOW_CONNECTIONS)
        try:
            r = httpx.post(f"{base}/worker/claim", json={"queue": "jobs"}, timeout=60)
            assert r.status_code == 200, r.text
            assert [x["id"] for x in r.json()["leases"]] == [item_id]
            # The head deadline (10 s) closes every slow connection; bounded wait, no timing.
            stop = threading.Event()
            for _ in range(60):
                if slow.closed_by_server() == SLOW_CONNECTIONS:
                    break
                stop.wait(1.0)
            assert slow.closed_by_server() == SLOW_CONNECTIONS
        finally:
            slow.close()


def test_at_the_cap_with_every_connection_busy_a_new_one_gets_a_503_problem(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    with serve_process(db, "--no-auth", "--max-connections", "2") as base:
        busy = [socket.create_connection(("127.0.0.1", _port(base)), timeout=30) for _ in "ab"]
        body = b'{"queue": "idle", "wait": 60}'
        for sock in busy:  # two long-polls: requests in progress, not evictable
            sock.sendall(
                b"POST /worker/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
        try:
            answer = b""
            for _ in range(100):  # until both long-polls are in (bounded)
                with socket.create_connection(("127.0.0.1", _port(base)), timeout=30) as sock:
                    sock.sendall(
                        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                    )
                    answer = _read_all(sock)
                if answer.startswith(b"HTTP/1.1 503"):
                    break
                threading.Event().wait(0.1)
            head, text = _head_and_body(answer)
            assert head.startswith("http/1.1 503 ") and f"content-type: {PROBLEM}" in head
            assert '"urn:workclaim:problem:service-unavailable"' in text
        finally:
            for sock in busy:
                sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = f"sqlite:///{tmp_path_factory.mktemp('transport') / 'w.db'}"
    with serve_process(db, "--no-auth") as base:
        yield base


def test_a_twenty_megabyte_header_is_refused_before_it_is_read(server: str) -> None:
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=30) as sock:
        sent = 0
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            chunk = b"a" * 65536
            while sent < 20 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
            sent += 4
        answer = _read_all(sock)
    # The server stops reading at the cap: either the sender saw the connection reset, or (if
    # the kernel buffered it all) the answer is a 431 problem, never the health check's 200.
    assert sent < 20 * 1024 * 1024 or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert not answer.startswith(b"HTTP/1.1 200")


def test_a_head_over_the_cap_gets_a_431_problem(server: str) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=30) as sock:
        sock.sendall(request)
        head, body = _head_and_body(_read_all(sock))
    assert head.startswith("http/1.1 431 "), head
    assert f"content-type: {PROBLEM}" in head and "connection: close" in head
    assert '"urn:workclaim:problem:headers-too-large"' in body


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n"],
    ids=["request-line", "header-name"],
)
def test_a_request_uvicorn_cannot_parse_gets_a_400_problem(
    server: str, request_bytes: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=30) as sock:
        sock.sendall(request_bytes)
        head, body = _head_and_body(_read_all(sock))
    assert head.startswith("http/1.1 400 "), head
    assert f"content-type: {PROBLEM}" in head
    assert '"urn:workclaim:problem:bad-request"' in body


# -- mutual TLS ------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(cwd: Path, name: str, subject: str, extension: str) -> None:
    """A P-256 key and a certificate for it signed by the test CA."""
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(extension + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
        cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made now."""
    cwd = tmp_path_factory.mktemp("pki")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=cwd)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=workclaim test CA",
        "-days", "2", "-out", "ca.pem", cwd=cwd,
    )  # fmt: skip
    _issue(cwd, "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1")
    _issue(cwd, "client", "/CN=worker-1", "extendedKeyUsage=clientAuth")
    return cwd


def _context(certs: Path, *, client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if client_cert:
        context.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    return context


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[str]:
    """`workclaim serve` with a server certificate and `--ssl-ca-certs`."""
    args = ["--no-auth", "--ssl-certfile", str(certs / "server.pem")]
    args += ["--ssl-keyfile", str(certs / "server.key"), "--ssl-ca-certs", str(certs / "ca.pem")]
    db = f"sqlite:///{tmp_path_factory.mktemp('tls') / 'w.db'}"
    with serve_process(db, *args, verify=_context(certs, client_cert=True)) as base:
        yield base


def test_ssl_ca_certs_requires_a_client_certificate(tls_server: str, certs: Path) -> None:
    with (
        pytest.raises(httpx.TransportError),
        httpx.Client(base_url=tls_server, verify=_context(certs, client_cert=False)) as c,
    ):
        c.get("/healthz")
    with httpx.Client(base_url=tls_server, verify=_context(certs, client_cert=True)) as c:
        assert c.get("/healthz").status_code == 200


def test_answers_over_tls_carry_hsts(tls_server: str, certs: Path) -> None:
    with httpx.Client(base_url=tls_server, verify=_context(certs, client_cert=True)) as c:
        for path in ("/healthz", "/", "/queues/nothing/stats"):
            assert c.get(path).headers["strict-transport-security"] == "max-age=31536000"
