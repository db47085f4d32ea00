"""Throwaway PgBouncer instances for tests: Debian's binary, a config written in a temp dir, a
free loopback port, transaction pooling in front of the tests' PostgreSQL.

One instance serves the whole session (the `postgres-pgbouncer` store provider); a test that
needs figures of its own (the connection budget) starts its own. PgBouncer refuses to run as
root, so under root it runs as the `postgres` OS user (`-u postgres`), which must read the temp
dir. A missing binary is `unavailable` (a failure under CI=true): `.ci/services.sh` installs it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests.support.missing import unavailable
from tests.support.pgserver import free_port

BINARY_PATHS = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
DEFAULT_POOL_SIZE = 20


def binary() -> str | None:
    """The pgbouncer executable, if installed."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    return next((path for path in BINARY_PATHS if os.access(path, os.X_OK)), None)


class PgBouncer:
    """One PgBouncer in transaction mode whose every database is the server behind
    `server_url`; `url(dbname)` reaches it as the `postgres` role. `server_options`: more of
    the database entry (say `timezone=Asia/Tokyo`, asked of every server session)."""

    def __init__(
        self, server_url: str, *, pool_size: int = DEFAULT_POOL_SIZE, server_options: str = ""
    ) -> None:
        exe = binary()
        if exe is None:
            unavailable("pgbouncer is not installed (.ci/services.sh installs Debian's)")
        target: dict[str, Any] = conninfo_to_dict(server_url)
        self.user = str(target.get("user") or "postgres")
        self.dbname = str(target.get("dbname") or "postgres")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="workclaim-pgbouncer-"))
        os.chmod(self.root, 0o755)
        host, server_port = target.get("host") or "127.0.0.1", target.get("port") or 5432
        (self.root / "userlist.txt").write_text(f'"{self.user}" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={server_port} {server_options}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.root}\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            f"admin_users = {self.user}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 2000\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
            "log_connections = 0\nlog_disconnections = 0\n"
        )
        command = [exe, str(self.root / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer will not run as root
            entry = pwd.getpwnam("postgres")
            for path in self.root.iterdir():
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            command[1:1] = ["-u", "postgres"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.root
        )
        self._wait_ready()

    def url(self, dbname: str | None = None) -> str:
        """A libpq URL through this PgBouncer (no workclaim options)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname or self.dbname}"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = (self.root / "pgbouncer.log").read_text() if self.log_exists() else ""
                raise RuntimeError(f"pgbouncer exited: {err} {log}".strip())
            try:
                self.admin("SHOW VERSION")
                return
            except psycopg.Error:
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not start within 15 s")

    def log_exists(self) -> bool:
        return (self.root / "pgbouncer.log").exists()

    def admin(self, command: str) -> list[dict[str, Any]]:
        """Rows of an admin console command (`SHOW POOLS`, ...), as dicts."""
        with psycopg.connect(
            self.url("pgbouncer"), autocommit=True, connect_timeout=10, prepare_threshold=None
        ) as conn:
            cur = conn.execute(command)
            names = [col.name for col in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def server_connections(self, dbname: str | None = None) -> int:
        """Server connections PgBouncer holds now for `dbname` (active, idle, used, tested,
        logging in), from `SHOW POOLS`."""
        name = dbname or self.dbname
        return sum(
            int(row[key])
            for row in self.admin("SHOW POOLS")
            if row["database"] == name
            for key in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
        )

    def stop(self) -> None:
        """Stop PgBouncer and delete its files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)


_session: PgBouncer | None = None


def session_pgbouncer(server_url: str, config: Any) -> PgBouncer:
    """The session's PgBouncer in front of `server_url`, started on first use, stopped at the
    end of the session."""
    global _session
    if _session is None or _session.process.poll() is not None:
        _session = PgBouncer(server_url)
        config.add_cleanup(_session.stop)
    return _session
