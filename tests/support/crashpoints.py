"""Named crash points for fault tests: a worker process dies with `os._exit(137)` (what SIGKILL
looks like to its parent) the n-th time it reaches the point named in `WORKCLAIM_CRASH_AT`.

`WORKCLAIM_CRASH_AT=point[:n]` (n defaults to 1). Points:
- `before_commit`: inside the claim's transaction, after its UPDATE ran, as COMMIT starts
  (SQLite only: a PostgreSQL or Redis claim is one atomic statement or script);
- `after_commit`: the claim committed, before the leases reach the caller;
- `mid_job`: the worker holds the lease and is working;
- `after_effect`: the job's side effect is written, `complete` not yet sent.

The hooks live in the tests' worker code; the library has none.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

ENV = "WORKCLAIM_CRASH_AT"
POINTS = ("before_commit", "after_commit", "mid_job", "after_effect")
EXIT_CODE = 137

_reached: Counter[str] = Counter()
_before_exit: list[Callable[[], None]] = []
_state = threading.local()


def armed() -> tuple[str, int] | None:
    """The (point, n) this process is armed with, or None."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    point, _, n = spec.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV}={spec!r}: unknown crash point; use one of {POINTS}")
    return point, int(n or 1)


def before_exit(fn: Callable[[], None]) -> None:
    """Run `fn` (e.g. flush the history file) just before a crash point exits."""
    _before_exit.append(fn)


def reached(point: str) -> None:
    """Count one arrival at `point`; exit on the armed arrival."""
    target = armed()
    if target is None or target[0] != point:
        return
    _reached[point] += 1
    if _reached[point] == target[1]:
        for fn in _before_exit:
            fn()
        os._exit(EXIT_CODE)


def install(queue: Any) -> None:
    """Put the `before_commit` and `after_commit` hooks around `queue`'s backend claim."""
    backend = queue.backend
    real_claim = backend.claim

    def claim(*args: Any, **kwargs: Any) -> Any:
        _state.in_claim = True
        try:
            leases = real_claim(*args, **kwargs)
        finally:
            _state.in_claim = False
        if leases:
            reached("after_commit")
        return leases

    backend.claim = claim
    if type(backend).__name__ == "SqliteBackend":
        _install_sqlite(backend)


def _install_sqlite(backend: Any) -> None:
    """A statement trace on each new connection: a claim's COMMIT that follows a change crashes."""
    real_open = backend._open

    def open_traced() -> sqlite3.Connection:
        return _trace(real_open())

    for conn in list(backend._all):  # connections opened before (e.g. by the migration)
        _trace(conn)
    backend._open = open_traced


def _trace(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Crash at a claim's COMMIT on `conn` when the transaction changed something."""
    start = {"changes": 0}

    def trace(statement: str) -> None:
        text = statement.strip().upper()
        if text.startswith("BEGIN"):
            start["changes"] = conn.total_changes
        elif (
            text == "COMMIT"
            and getattr(_state, "in_claim", False)
            and conn.total_changes > start["changes"]
        ):
            reached("before_commit")

    conn.set_trace_callback(trace)
    return conn
