"""A connection pooler between workclaim and PostgreSQL (PgBouncer in transaction mode).

A transaction pooler hands each transaction to whichever server session is free, so nothing may
outlive a transaction: no startup `options` (PgBouncer refuses the parameter), no server-side
prepared statements, no session settings it does not track, no LISTEN. What needs a session of
its own (LISTEN, migrations) uses `direct_url`, the same database not through the pooler; without
one, waiting claims poll (`POLL_SECONDS`) and migrations run through the pooler (safe: they are
one transaction under a transaction-scoped advisory lock).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

# How often waiting claims look again when there is no LISTEN (a pooler and no direct_url):
# the most a claim waits for work another process enqueued (this process's own writes wake
# its waiters at once).
POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Pooler:
    """How the URL reaches the server: `transaction` when through a transaction pooler;
    `direct_url` the libpq URL of the same database without the pooler, if given."""

    transaction: bool = False
    direct_url: str | None = None


def refused_options(exc: psycopg.Error) -> bool:
    """True when a connection failed because the server (a pooler) refuses `options`."""
    return "unsupported startup parameter: options" in str(exc)
