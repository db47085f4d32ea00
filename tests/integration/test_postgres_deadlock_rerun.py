"""A repeat-safe PostgreSQL call that the server chose as a deadlock's victim runs again.

The server rolls a deadlock victim's transaction back whole, so a call declared safe to repeat
(a claim, a fenced write, a read) runs once more instead of surfacing `BackendUnavailable` (the
flow race met one: a managed claim that reaped, holding counter rows, against one holding the
policy row). The deadlock here is the server's own SQLSTATE 40P01, raised by a real statement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import postgres_url
from workclaim import Settings
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.postgres.connection import DEADLOCK_RERUNS
from workclaim.errors import BackendUnavailable

RAISE_DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION 'chosen' USING ERRCODE = '40P01'; END $$"


def _deadlocking(times: int) -> tuple[list[int], Any]:
    """A call that is a deadlock's victim its first `times` runs, then returns its run count."""
    runs: list[int] = []

    def fn(conn: Any) -> int:
        runs.append(1)
        conn.execute("SELECT 1")
        if len(runs) <= times:
            conn.execute(RAISE_DEADLOCK)
        return len(runs)

    return runs, fn


def test_a_deadlock_victim_runs_again(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    backend = PostgresBackend(postgres_url(request, tmp_path), Settings())
    try:
        _, fn = _deadlocking(DEADLOCK_RERUNS)
        assert backend._call(fn) == DEADLOCK_RERUNS + 1

        runs, fn = _deadlocking(DEADLOCK_RERUNS + 1)
        with pytest.raises(BackendUnavailable, match=r"chosen"):
            backend._call(fn)
        assert len(runs) == DEADLOCK_RERUNS + 1

        runs, fn = _deadlocking(1)  # a call that is not safe to repeat is never run again
        with pytest.raises(BackendUnavailable):
            backend._call(fn, retry=False)
        assert len(runs) == 1
    finally:
        backend.close()
