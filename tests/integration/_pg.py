"""Fixtures' helpers for the PostgreSQL integration tests."""

from __future__ import annotations

from typing import Any

import psycopg


def connect(url: str) -> psycopg.Connection[Any]:
    """A plain psycopg connection to the database behind a workclaim URL (options stripped)."""
    from workclaim.backends.postgres.connection import parse_url

    libpq_url, _, _ = parse_url(url)
    return psycopg.connect(libpq_url, connect_timeout=5)
