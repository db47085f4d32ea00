"""Throwaway PostgreSQL servers for tests: initdb in a temp dir, a free loopback port.

Used when nothing listens at the test URL (one server for the whole session), and by tests that
crash or stop a server, which must never touch the shared one. When the tests run as root the
server runs as the `postgres` OS user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any


def binaries() -> Path | None:
    """The newest installed PostgreSQL bin directory with initdb and pg_ctl, if any."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in a temporary directory; `url` reaches its `postgres` database."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.datadir = root / "data"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    @classmethod
    def create(cls, bindir: Path) -> PgServer:
        """initdb a new cluster (trust auth on loopback) and start it."""
        root = Path(tempfile.mkdtemp(prefix="workclaim-pg-"))
        server = cls(bindir, root, free_port())
        server._chown(root)
        server._run(
            "initdb", "-D", str(server.datadir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        server.start()
        return server

    def _owner(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam("postgres")
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _chown(self, path: Path) -> None:
        owner = self._owner()
        if owner:
            os.chown(path, owner["user"], owner["group"])

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            timeout=60,
            cwd=self.root,
            **self._owner(),
        )

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def crash(self) -> None:
        """Stop the server the way a crash does (immediate: no checkpoint, recovery on start)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the server cleanly (if it runs)."""
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
            **self._owner(),
        )

    def destroy(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def reachable(url: str) -> str | None:
    """None if `url` accepts a connection within two seconds, else why not."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def session_server(url: str, config: Any) -> tuple[str | None, str | None]:
    """(URL, None) for the tests' PostgreSQL: `url` if it answers, else a throwaway server that
    stops at the end of the session; (None, reason) if neither is possible."""
    why = reachable(url)
    if why is None:
        return url, None
    bindir = binaries()
    if bindir is None:
        return None, f"PostgreSQL unreachable at {url} ({why}) and no binaries to start one"
    try:
        server = PgServer.create(bindir)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"PostgreSQL unreachable at {url} ({why}); a throwaway failed: {exc}"
    config.add_cleanup(server.destroy)
    return server.url, None


def drop_schema(url: str, schema: str) -> None:
    """Drop a test's schema (and everything in it); gives up quietly if the server is gone."""
    import psycopg
    from psycopg import sql

    from workclaim.backends.postgres.connection import parse_url

    libpq_url = parse_url(url)[0]  # without workclaim's own options (schema=...), libpq's refusal
    try:
        with psycopg.connect(libpq_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    except psycopg.Error:
        pass
