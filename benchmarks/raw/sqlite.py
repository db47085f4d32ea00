"""Raw SQLite baseline: `BEGIN IMMEDIATE`, bump a token counter, `UPDATE ... WHERE id IN (SELECT
... LIMIT n) RETURNING`, and a token-checked completion, through sqlite3 (no library).

Its database is the workclaim file's path plus `.raw`, in WAL with the URL's `synchronous`
(default full, as workclaim's).
"""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import parse_qsl, unquote, urlsplit


def _path(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    path = unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    sync = dict(parse_qsl(parts.query)).get("synchronous", "full").upper()
    return path + ".raw", sync


def _connect(path: str, sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {sync}")
    return conn


def prefill(url: str, n: int) -> None:
    """Recreate the raw database and insert n queued no-op items."""
    path, sync = _path(url)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    conn = _connect(path, sync)
    try:
        conn.executescript(
            """
            CREATE TABLE counter (value INTEGER NOT NULL);
            INSERT INTO counter VALUES (0);
            CREATE TABLE items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL,
                                status TEXT NOT NULL, priority INTEGER NOT NULL, token INTEGER);
            CREATE INDEX items_queued ON items (priority, id) WHERE status = 'queued';
            """
        )
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO items (payload, status, priority) VALUES ('{}', 'queued', 0)",
            ([] for _ in range(n)),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


class SqliteRawWorker:
    """One connection running the claim transaction and the completion."""

    def __init__(self, url: str) -> None:
        self.conn = _connect(*_path(url))

    def claim(self, batch: int) -> list[tuple[int, int]]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                """UPDATE items SET status = 'claimed',
                       token = (SELECT value FROM counter) + c.rn
                   FROM (SELECT id, row_number() OVER (ORDER BY priority, id) AS rn
                         FROM (SELECT id, priority FROM items WHERE status = 'queued'
                               ORDER BY priority, id LIMIT ?)) AS c
                   WHERE items.id = c.id RETURNING items.id, items.token""",
                (batch,),
            ).fetchall()
            conn.execute("UPDATE counter SET value = value + ?", (len(rows),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [(int(r[0]), int(r[1])) for r in rows]

    def complete(self, item_id: int, token: int) -> None:
        self.conn.execute(
            "UPDATE items SET status = 'done' WHERE id = ? AND token = ? AND status = 'claimed'",
            (item_id, token),
        )

    def close(self) -> None:
        self.conn.close()


def open_worker(url: str) -> SqliteRawWorker:
    """A raw worker on its own connection."""
    return SqliteRawWorker(url)
