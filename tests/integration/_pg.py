"""Fixtures' helpers for the PostgreSQL integration tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from workclaim.backends.postgres.backend import REAP_LIMIT

LEASE = timedelta(minutes=5)


def connect(url: str) -> psycopg.Connection[Any]:
    """A plain psycopg connection to the database behind a workclaim URL (options stripped)."""
    from workclaim.backends.postgres.connection import parse_url

    libpq_url, _, _ = parse_url(url)
    return psycopg.connect(libpq_url, connect_timeout=5)


def claim_params(
    queues: list[str],
    limit: int,
    *,
    worker: str = "w-test",
    reap_limit: int = REAP_LIMIT,
    floors: bool = True,
) -> dict[str, Any]:
    """The parameters of queries.sql's `claim` (and the claim half of `complete_and_claim`): a
    five-minute lease on the store's clock, starting at the scan floors unless `floors` is
    false."""
    return {
        "queues": queues,
        "worker": worker,
        "lease": LEASE,
        "limit": limit,
        "now": None,
        "reap_limit": reap_limit,
        "floors": floors,
    }
