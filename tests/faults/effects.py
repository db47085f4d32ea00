"""A fenced "effect store": what a user's side effect should look like under workclaim.

Each write carries the lease's token; the store keeps the highest token it has seen per item and
refuses a write with a lower one, so a worker that was paused past its lease (and lost the item
to another worker) cannot overwrite newer work. It is its own SQLite file, shared by the test's
processes, and logs every attempt so the test can count rejected and accepted stale writes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS effects (item_id INTEGER PRIMARY KEY, fence INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS attempts (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "item_id INTEGER NOT NULL, fence INTEGER NOT NULL, worker TEXT NOT NULL, "
    "accepted INTEGER NOT NULL)",
)


@dataclass(frozen=True, slots=True)
class EffectSummary:
    """What the effect store saw: accepted and rejected writes, and executions per item."""

    accepted: int
    rejected_stale: int
    accepted_stale: int  # must be 0: a write accepted below a fence already seen
    duplicate_executions: int  # items whose effect was applied under more than one token


class EffectStore:
    """`write(item, token, worker)` applies the effect only if `token` >= the highest seen."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode = WAL")
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def write(self, item_id: int, token: int, worker: str) -> bool:
        """Apply the item's effect under `token`; False (and nothing applied) when it is stale."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT fence FROM effects WHERE item_id = ?", (item_id,)).fetchone()
            accepted = row is None or token >= int(row[0])
            if accepted:
                conn.execute(
                    "INSERT INTO effects (item_id, fence) VALUES (?, ?) "
                    "ON CONFLICT (item_id) DO UPDATE SET fence = excluded.fence",
                    (item_id, token),
                )
            conn.execute(
                "INSERT INTO attempts (item_id, fence, worker, accepted) VALUES (?, ?, ?, ?)",
                (item_id, token, worker, int(accepted)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return accepted

    def summary(self) -> EffectSummary:
        """Replay the attempt log in order and count what the fence did."""
        highest: dict[int, int] = {}
        tokens: dict[int, set[int]] = {}
        accepted = rejected = accepted_stale = 0
        rows = self._conn.execute("SELECT item_id, fence, accepted FROM attempts ORDER BY seq")
        for item_id, fence, ok in rows:
            top = highest.get(item_id, -1)
            if ok:
                accepted += 1
                accepted_stale += fence < top
                tokens.setdefault(item_id, set()).add(fence)
                highest[item_id] = max(top, fence)
            else:
                rejected += 1
        duplicates = sum(1 for seen in tokens.values() if len(seen) > 1)
        return EffectSummary(accepted, rejected, accepted_stale, duplicates)
