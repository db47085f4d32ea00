"""Flow control on SQLite: stored policies and the claim of managed queues.

A queue is *managed* while it has a limit, is paused, or has ever had an item in a group
(`workclaim_policies.managed`). Claims of other queues take the plain path in backend.py; a claim
naming a managed queue runs `take` here, inside the claim's own write transaction, so the counts
it reads are exact under any number of claimers (SQLite has one writer at a time).

`take` picks items in the contract's fair order `(priority, k, served, run_at, id)` by the walk
it shares with MariaDB (backends/_flow.py), without reading every group: a page of groups
per statement, stopping as soon as the batch is full. The policies' bookkeeping is shared too.
What is SQLite's own is here: the statements (flow.sql, run by `_Sql`), marking a newly managed
queue's items, taking a dry group out of the walk at once (the claim is the one writer), and
leasing the chosen items in one statement.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from workclaim.backends import _flow as flows
from workclaim.backends._queryfile import load_queries
from workclaim.backends.sqlite import schema
from workclaim.models import QueuePolicy

F = load_queries(schema.PACKAGE, "flow.sql")


class _Sql:
    """flow.sql's statements on the verb's connection, for backends/_flow.py (`FlowStatements`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def one(self, name: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(F[name], params).fetchone()
        return row

    def all(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return self.conn.execute(F[name], params).fetchall()

    def run(self, name: str, params: Mapping[str, Any]) -> None:
        self.conn.execute(F[name], params)

    def mark_managed(self, queue: str) -> None:
        """Bring the newly managed queue's live items into the managed indexes (`flow = 1`)
        and its groups into the walk."""
        params = {"queue": queue}
        self.conn.execute(F["mark_queued"], params)
        self.conn.execute(F["mark_claimed"], params)
        self.conn.execute(F["mark_groups"], params)

    def drop_if_dry(self, queue: str, grp: str) -> None:
        """Take a group with neither a queued item nor a lease out of the walk (`active = 0`)
        until an item of it is enqueued or requeued (`activate`): the claim is the one writer."""
        key = {"queue": queue, "grp": grp}
        if not self.conn.execute(F["group_has_work"], key).fetchone()[0]:
            self.conn.execute(F["deactivate_group"], key)


def read_policy(conn: sqlite3.Connection, queue: str) -> QueuePolicy:
    """The queue's stored policy."""
    return flows.read_policy(_Sql(conn), queue)


def set_policy(conn: sqlite3.Connection, policy: QueuePolicy) -> QueuePolicy:
    """Store the four limits (the paused flag kept); returns the stored policy."""
    return flows.set_policy(_Sql(conn), policy)


def set_paused(conn: sqlite3.Connection, queue: str, paused: bool) -> QueuePolicy:
    """Set the paused flag; returns the stored policy."""
    return flows.set_paused(_Sql(conn), queue, paused)


def set_grouped(conn: sqlite3.Connection, queue: str) -> None:
    """Before the first item of `queue` in a group is inserted: the queue becomes grouped
    (managed for ever after)."""
    flows.set_grouped(_Sql(conn), queue)


def is_managed(conn: sqlite3.Connection, queue: str) -> bool:
    """Whether claims of `queue` take the flow-control path (an enqueue's items then join the
    managed indexes)."""
    return flows.is_managed(_Sql(conn), queue)


def activate(conn: sqlite3.Connection, queue: str, groups: Sequence[str]) -> None:
    """The groups of items just enqueued into managed `queue` join the served-order walk."""
    conn.execute(F["activate_groups"], {"queue": queue, "groups": json.dumps(sorted(set(groups)))})


def activate_item(conn: sqlite3.Connection, item_id: int) -> None:
    """A requeued item's group joins the walk again (nothing if its queue is not managed)."""
    conn.execute(F["activate_item_group"], {"id": item_id})


def take(
    conn: sqlite3.Connection,
    queues: Sequence[str],
    worker: str,
    lease_us: int,
    limit: int,
    now_us: int,
) -> list[tuple[Any, ...]]:
    """The claim of queues of which at least one is managed (expired leases already reaped):
    lease up to `limit` items in the fair order within the policies (the shared walk,
    backends/_flow.py); rows as the plain claim's plus the group. The caller advances the
    token counter past the rows, as for a plain claim."""
    rows = conn.execute(F["policies_of"], {"queues": json.dumps(list(queues))}).fetchall()
    chosen = flows.FairClaim(_Sql(conn), now_us, limit).choose(queues, rows)
    if not chosen:
        return []
    ids = json.dumps([item_id for item_id, _ in chosen])
    params = {"ids": ids, "now": now_us, "worker": worker, "lease_us": lease_us}
    claimed = conn.execute(F["claim_ids"], params).fetchall()
    served, records = flows.served_and_records(chosen, claimed)
    if served:
        rows_json = json.dumps([[q, g, token] for (q, g), token in served.items()])
        conn.execute(F["served"], {"rows": rows_json})
    if records:
        conn.execute(F["record_claims"], {"rows": json.dumps(records), "at": now_us})
    return claimed


def rate_due(conn: sqlite3.Connection, queues: Sequence[str], now_us: int) -> int | None:
    """The earliest time a rate window of `queues` moves past a claim that fills it, or None."""
    rated = conn.execute(F["rated_policies"], {"queues": json.dumps(list(queues))}).fetchall()
    return flows.rate_due(_Sql(conn), rated, now_us)
