"""The test MariaDB: whether the shared server answers and a database of each test's own on it;
and throwaway servers, `mariadb-install-db` in a temp dir on a free loopback port with a socket of
its own and root without a password, for the tests that crash, restart or cut off a server, which
must never touch the shared one on 3306.

Tests talk to the servers with MySQLdb directly (root, by default without a password), never
through workclaim, so a broken backend cannot hide a broken fixture. A throwaway's `crash()` is a
SIGKILL (InnoDB recovers on the next start); `start()` again reuses the same data directory. When
the tests run as root it runs as the `mysql` OS user, which the Debian package creates (mariadbd
refuses root unless told otherwise).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlsplit

import MySQLdb
from MySQLdb.connections import Connection


def _connect(url: str) -> Connection:
    parts = urlsplit(url)
    return MySQLdb.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        connect_timeout=5,
        autocommit=True,
    )


def check(url: str) -> tuple[str | None, str]:
    """(url, "") when the server answers, else (None, why not)."""
    try:
        with closing(_connect(url)) as conn:
            conn.ping()
    except MySQLdb.MySQLError as exc:
        return None, f"MariaDB is not available at {urlsplit(url).netloc} ({exc})"
    return url, ""


def with_database(url: str, name: str) -> str:
    """`url` naming database `name` instead of its own."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def create_database(url: str, name: str) -> None:
    """Create the (new, empty) database `name`."""
    with closing(_connect(url)) as conn, closing(conn.cursor()) as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")


def drop_database(url: str, name: str) -> None:
    """Drop database `name` (after its test; gone already is fine)."""
    with closing(_connect(url)) as conn, closing(conn.cursor()) as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


MARIADBD = "/usr/sbin/mariadbd"
_READY_SECONDS = 60.0
_STOP_SECONDS = 60.0


def binaries() -> tuple[str, str] | None:
    """(mariadbd, mariadb-install-db) when both are installed, else None."""
    server = MARIADBD if Path(MARIADBD).exists() else shutil.which("mariadbd")
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    return (server, install) if server and install else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect_root(port: int, timeout: int = 2) -> Connection:
    return MySQLdb.connect(
        host="127.0.0.1", port=port, user="root", connect_timeout=timeout, autocommit=True
    )


class MariadbServer:
    """One `mariadbd` on a data directory in a temporary directory; `url` reaches its `test`
    database as root. `process` is the running server (None while it is stopped); `options`
    are more `mariadbd` options, after (so overriding) the defaults."""

    def __init__(self, mariadbd: str, root: Path, port: int, options: Sequence[str] = ()) -> None:
        self.mariadbd = mariadbd
        self.options = tuple(options)
        self.root = root
        self.datadir = root / "data"
        self.port = port
        self.url = f"mariadb://root@127.0.0.1:{port}/test"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, options: Sequence[str] = ()) -> MariadbServer:
        """Install a fresh data directory, start the server (with `options` added, such as
        `--innodb-flush-log-at-trx-commit=2`) and create database `test`."""
        found = binaries()
        if found is None:
            raise RuntimeError("MariaDB server binaries (mariadbd, mariadb-install-db) missing")
        mariadbd, install = found
        root = Path(tempfile.mkdtemp(prefix="workclaim-mariadb-"))
        server = cls(mariadbd, root, free_port(), options)
        try:
            server._chown(root)
            subprocess.run(
                [
                    install, "--no-defaults", f"--datadir={server.datadir}",
                    "--auth-root-authentication-method=normal", "--skip-test-db",
                    "--skip-name-resolve", *server._user_option(),
                ],
                check=True, capture_output=True, timeout=120, cwd=root,
            )  # fmt: skip
            server.start()
            server.execute("CREATE DATABASE IF NOT EXISTS test")
        except BaseException:
            server.destroy()
            raise
        return server

    def _user_option(self) -> list[str]:
        return ["--user=mysql"] if os.geteuid() == 0 else []

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("mysql")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _argv(self) -> list[str]:
        return [
            self.mariadbd, "--no-defaults", *self._user_option(),
            f"--datadir={self.datadir}", f"--socket={self.root / 'mariadbd.sock'}",
            f"--pid-file={self.root / 'mariadbd.pid'}", f"--log-error={self.root / 'server.log'}",
            f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
            "--max-connections=500", "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=32M", "--innodb-flush-log-at-trx-commit=1", *self.options,
        ]  # fmt: skip

    def start(self) -> None:
        """Start (or restart, after a crash or stop) the server; wait until it accepts connections
        on its port."""
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.root
        )
        deadline = time.monotonic() + _READY_SECONDS
        while True:
            try:
                with closing(_connect_root(self.port, timeout=1)):
                    return
            except MySQLdb.MySQLError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        f"mariadbd did not start on port {self.port}: {self.log_tail()}"
                    ) from None
            time.sleep(0.1)  # polling: the server has no readiness event to wait on

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server's error log (for failure messages)."""
        log = self.root / "server.log"
        if not log.exists():
            return ""
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])

    def crash(self) -> None:
        """SIGKILL the server, as a crash does: no clean shutdown, InnoDB recovery on start."""
        self.kill()

    def kill(self) -> None:
        """SIGKILL the server (if it runs) and reap it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(_STOP_SECONDS)
        self.process = None

    def stop(self) -> None:
        """Stop the server cleanly (SIGTERM, then SIGKILL if it will not go)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(_STOP_SECONDS)
        self.kill()

    def destroy(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def execute(self, sql: str) -> int:
        """Run one statement as root (autocommit); returns the affected row count."""
        with closing(_connect_root(self.port, timeout=5)) as conn, closing(conn.cursor()) as cur:
            return int(cur.execute(sql))

    def database_url(self) -> str:
        """The URL of a fresh database of its own on this server (`wcf_<hex>`)."""
        name = f"wcf_{secrets.token_hex(4)}"
        create_database(self.url, name)
        return with_database(self.url, name)
