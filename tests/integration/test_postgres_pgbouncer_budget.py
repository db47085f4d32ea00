"""The connection budget through PgBouncer: 200 worker processes (more than the server's
`max_connections`), each with its own pool, through one PgBouncer in transaction mode with
`default_pool_size=20`. Every item must be done exactly once, no process may fail (no "too many
connections"), and PgBouncer must never hold more than its 20 server connections. Prints the
figures (items/s, peak server and client connections) for docs/deployment.md; run with `-s`.

The processes are forked by tests/support/budget_worker.py after it imported workclaim once
(real OS processes, without paying 200 interpreter starts and imports on a 2-core CI machine).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pytest

from tests.support.pgbouncer import PgBouncer
from tests.support.servers import postgres_base, postgres_url, with_query
from workclaim import Queue

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PROCESSES = 200
POOL_SIZE = 20
ITEMS = 4_000


def _max_connections(base: str) -> int:
    from workclaim.backends.postgres.connection import parse_url

    with psycopg.connect(parse_url(base)[0], connect_timeout=5) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
        assert row is not None
        return int(row[0])


class _Peaks:
    """Samples PgBouncer's SHOW POOLS in a thread: the most server and client connections."""

    def __init__(self, bouncer: PgBouncer) -> None:
        self.bouncer = bouncer
        self.server = 0
        self.clients = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(psycopg.Error):  # a busy machine: the next sample counts
                self.sample()

    def sample(self) -> None:
        rows = [r for r in self.bouncer.admin("SHOW POOLS") if r["database"] != "pgbouncer"]
        server = sum(
            int(r[k])
            for r in rows
            for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
        )
        clients = sum(int(r[k]) for r in rows for k in ("cl_active", "cl_waiting"))
        self.server = max(self.server, server)
        self.clients = max(self.clients, clients)

    def __enter__(self) -> _Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_200_worker_processes_share_20_server_connections(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    base = postgres_base(request)
    max_connections = _max_connections(base)
    processes = max(PROCESSES, max_connections + 20)  # more than the server could take directly
    schema = dict(parse_qsl(urlsplit(postgres_url(request, tmp_path)).query))["schema"]
    bouncer = PgBouncer(base, pool_size=POOL_SIZE)
    try:
        url = with_query(bouncer.url(), schema=schema, pgbouncer="transaction", pool_size="2")
        queue = f"budget-{uuid.uuid4().hex[:8]}"
        with Queue(url) as q:
            ids = set(q.enqueue_many(queue, range(ITEMS)))

        command = [sys.executable, "-m", "tests.support.budget_worker", url, queue]
        with (
            subprocess.Popen(
                [*command, str(processes), str(tmp_path)],
                stdout=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).resolve().parents[2],
            ) as launcher,
            _Peaks(bouncer) as peaks,
        ):
            assert launcher.stdout is not None
            ready = json.loads(launcher.stdout.readline() or "{}")  # all connected
            assert ready.get("ready") == processes, "the workers did not all start"
            peaks.sample()
            ended = json.loads(launcher.stdout.readline() or "{}")
            launcher.wait(30)
        took = float(ended["seconds"])
        outs = [tmp_path / f"w{i}.json" for i in range(processes)]
        results = [
            json.loads(out.read_text()) if out.exists() else {"error": "no output"} for out in outs
        ]
        errors = [r["error"] for r in results if "error" in r]
        assert errors == [], errors[:5]
        assert ended["exitcodes"] == [0] * processes
        done = [item for r in results for item in r["done"]]
        assert len(done) == ITEMS and set(done) == ids  # every item done, and once
        with Queue(url) as q:
            assert q.stats(queue).done == ITEMS
        assert processes > max_connections
        assert peaks.clients >= processes  # all of them connected at once
        assert 0 < peaks.server <= POOL_SIZE
        print(
            f"\nconnection budget: {processes} processes through PgBouncer "
            f"(default_pool_size={POOL_SIZE}, server max_connections={max_connections}): "
            f"all connected in {ready['connect_seconds']:.1f}s; {ITEMS} items in {took:.1f}s = "
            f"{ITEMS / took:.0f} items/s; peak server connections {peaks.server}, peak client "
            f"connections {peaks.clients}"
        )
    finally:
        bouncer.stop()
