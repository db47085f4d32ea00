"""Throwaway servers for the peer benchmark: a PostgreSQL cluster, a redis-server and a MariaDB
server, each on a free loopback port in a temp dir, started and stopped by the harness so no run
touches the shared servers (and RQ/saq can have a whole Redis to themselves)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

# Redis persistence presets: "none" matches the machine's shared server (no RDB, no AOF);
# "aof-always" is workclaim's full durability promise (DESIGN.md section 2).
REDIS_PERSISTENCE = {
    "none": ["--save", "", "--appendonly", "no"],
    "aof-everysec": ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
    "aof-always": ["--save", "", "--appendonly", "yes", "--appendfsync", "always"],
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of our own (we may FLUSHALL it between runs: nobody else uses it)."""

    def __init__(self, persistence: str = "none") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="peers-redis-"))
        self.port = free_port()
        self.persistence = persistence
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.root), "--daemonize", "no", "--loglevel", "warning",
            *REDIS_PERSISTENCE[self.persistence],
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


def _pg_bindir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


class PgServer:
    """A PostgreSQL cluster of our own, durable as shipped (fsync and synchronous_commit on),
    with room for 32 worker processes' connections. Runs as the `postgres` OS user when we are
    root, since PostgreSQL refuses to run as root."""

    def __init__(self) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError("initdb/pg_ctl not found: install PostgreSQL or pass --pg-url")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="peers-pg-"))
        self.datadir = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _owner(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam("postgres")
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bindir / tool), *args], check=True, capture_output=True, timeout=120,
            cwd=self.root, **self._owner(),
        )  # fmt: skip

    def start(self) -> None:
        owner = self._owner()
        if owner:
            os.chown(self.root, owner["user"], owner["group"])
        self._run(
            "initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=600"
        )
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
            capture_output=True, timeout=60, check=False, **self._owner(),
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def _mariadb_binaries() -> tuple[str, str] | None:
    server = "/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None
    server = server or shutil.which("mariadbd")
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    return (server, install) if server and install else None


class MariadbServer:
    """A MariaDB server of our own, durable as shipped (`innodb_flush_log_at_trx_commit=1`, no
    binary log), with room for 32 worker processes' connections; root without a password on
    127.0.0.1. Runs as the `mysql` OS user when we are root (mariadbd refuses root)."""

    def __init__(self) -> None:
        found = _mariadb_binaries()
        if found is None:
            raise RuntimeError(
                "mariadbd/mariadb-install-db not found: install mariadb-server or pass "
                "--mariadb-url"
            )
        self.mariadbd, self.install = found
        self.root = Path(tempfile.mkdtemp(prefix="peers-mariadb-"))
        self.datadir = self.root / "data"
        self.port = free_port()
        self.url = f"mariadb://root@127.0.0.1:{self.port}/peers"
        self.proc: subprocess.Popen[bytes] | None = None

    def _user(self) -> list[str]:
        return ["--user=mysql"] if os.geteuid() == 0 else []

    def start(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("mysql")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                self.install, "--no-defaults", f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal", "--skip-test-db",
                "--skip-name-resolve", *self._user(),
            ],
            check=True, capture_output=True, timeout=120, cwd=self.root,
        )  # fmt: skip
        self.proc = subprocess.Popen(
            [
                self.mariadbd, "--no-defaults", *self._user(), f"--datadir={self.datadir}",
                f"--socket={self.root / 'mariadbd.sock'}", f"--port={self.port}",
                "--bind-address=127.0.0.1", "--skip-name-resolve", "--max-connections=600",
                f"--log-error={self.root / 'server.log'}", "--innodb-flush-log-at-trx-commit=1",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.root,
        )  # fmt: skip
        import MySQLdb

        deadline = time.monotonic() + 60
        while True:
            try:
                conn = MySQLdb.connect(
                    host="127.0.0.1", port=self.port, user="root", connect_timeout=1
                )
                conn.close()
                return
            except MySQLdb.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mariadbd did not start on port {self.port}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
