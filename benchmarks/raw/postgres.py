"""Raw PostgreSQL baseline: the bare SKIP LOCKED claim and a token-checked completion through
psycopg (autocommit, one connection per worker, no pool, no library).

Its table lives in the schema `<schema>_raw` (the URL's `schema` option, default `workclaim`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql


def _split(url: str) -> tuple[str, sql.Identifier]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    options = dict(query)
    rest = [(k, v) for k, v in query if k not in ("schema", "pool_size")]
    schema = f"{options.get('schema', 'workclaim')}_raw"
    return urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote))), sql.Identifier(
        schema
    )


def prefill(url: str, n: int) -> None:
    """Recreate the raw table and insert n queued no-op items."""
    libpq, schema = _split(url)
    with psycopg.connect(libpq, autocommit=True) as conn:
        for statement in (
            "DROP SCHEMA IF EXISTS {s} CASCADE",
            "CREATE SCHEMA {s}",
            "CREATE SEQUENCE {s}.token_seq CACHE 1",
            """CREATE TABLE {s}.items (
                   id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   payload json NOT NULL, status text NOT NULL, priority int NOT NULL,
                   token bigint, expires_at timestamptz)""",
            "CREATE INDEX ON {s}.items (priority, id) WHERE status = 'queued'",
            """INSERT INTO {s}.items (payload, status, priority)
               SELECT '{{}}', 'queued', 0 FROM generate_series(1, %(n)s)""",
            "ANALYZE {s}.items",
        ):
            conn.execute(sql.SQL(statement).format(s=schema), {"n": n})


class PgRawWorker:
    """One autocommit connection running the two statements."""

    def __init__(self, url: str) -> None:
        libpq, schema = _split(url)
        self.conn: psycopg.Connection[Any] = psycopg.connect(libpq, autocommit=True)
        self.claim_sql = sql.SQL(
            """WITH c AS MATERIALIZED (
                   SELECT id FROM {s}.items WHERE status = 'queued'
                   ORDER BY priority, id LIMIT %s FOR UPDATE SKIP LOCKED)
               UPDATE {s}.items AS i
               SET status = 'claimed', token = nextval('{s}.token_seq'),
                   expires_at = now() + interval '30 seconds'
               FROM c WHERE i.id = c.id RETURNING i.id, i.token"""
        ).format(s=schema)
        self.complete_sql = sql.SQL(
            """UPDATE {s}.items SET status = 'done', expires_at = NULL
               WHERE id = %s AND token = %s AND status = 'claimed' AND expires_at > now()"""
        ).format(s=schema)

    def claim(self, batch: int) -> list[tuple[int, int]]:
        return [(int(r[0]), int(r[1])) for r in self.conn.execute(self.claim_sql, (batch,))]

    def complete(self, item_id: int, token: int) -> None:
        self.conn.execute(self.complete_sql, (item_id, token))

    def close(self) -> None:
        self.conn.close()


def open_worker(url: str) -> PgRawWorker:
    """A raw worker on its own connection."""
    return PgRawWorker(url)


def drop(url: str) -> None:
    """Drop the raw baseline's schema (benchmarks call this when they are done)."""
    libpq, schema = _split(url)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
