"""Flow control on MariaDB: stored policies and the claim of managed queues.

A queue is *managed* while it has a limit, is paused, or has ever had an item in a group
(`workclaim_policies.managed`). Claims of other queues take the plain path in backend.py; a claim
naming a managed queue runs `take` here, inside the claim's own READ COMMITTED transaction.

Exact limits under concurrency, as the PostgreSQL backend gets them: `take` first locks the
claimed queues' policy rows (`SELECT ... FOR UPDATE`, in queue order, so two claims never
deadlock on them). Every managed queue has a row, so the claims of a managed queue run one at a
time from that lock to their commit, and each statement after the lock reads the newest commits:
the live leases and the claims in a rate window it counts include every lease the claims before
it gave, so two racing claims never both take the last free slot. The time the leases start is
read after the counts (unless the caller gave one), so it follows every end of a lease they saw;
the counts themselves use the transaction's earlier time, which only counts more leases as live
and more claims as inside a rate window than at the later one.
`set_paused` writes the same row, so it waits for the claims holding it, and a claim that starts
after it returns reads the flag it wrote: pause is linearisable.

`take` picks items in the contract's fair order `(priority, k, served, run_at, id)` by the walk
it shares with SQLite (backends/_flow.py), without reading every group: a page of groups per
statement, stopping as soon as the batch is full. The chosen items are then locked
(SKIP LOCKED: a plain claim of another queue named in the same claim may hold one) and leased
with tokens from the sequence in claim order.

A named group found with neither queued items nor leases leaves the walk (`active = 0`) until an
item of it is enqueued or requeued; enqueues read their groups' rows with a shared lock and the
claim deactivates only a row it can lock at once, so an item being enqueued never lands in a
group out of the walk. The default group never leaves it (an enqueue that read its queue as not
managed takes no lock on it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workclaim.backends import _flow as flows
from workclaim.backends._queryfile import load_queries
from workclaim.backends.mariadb import schema
from workclaim.backends.mariadb.connection import CLOCK_SQL, Cursor
from workclaim.models import QueuePolicy

F = load_queries(schema.PACKAGE, "flow.sql")


def _one(cur: Cursor, name: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    cur.execute(F[name], params)
    row: tuple[Any, ...] | None = cur.fetchone()
    return row


def _all(cur: Cursor, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    cur.execute(F[name], params)
    return list(cur.fetchall())


def _insert(cur: Cursor, name: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """A multi-row INSERT of `rows`: the named query's one `VALUES (...)` repeated, one round
    trip."""
    head, _, tail = F[name].partition("VALUES")
    one, _, rest = tail.strip().partition(")")
    values = ", ".join([one + ")"] * len(rows))
    cur.execute(f"{head}VALUES {values}{rest}", [value for row in rows for value in row])


class _Sql:
    """flow.sql's statements on the verb's cursor, for backends/_flow.py (`FlowStatements`)."""

    def __init__(self, cur: Cursor) -> None:
        self.cur = cur

    def one(self, name: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        return _one(self.cur, name, params)

    def all(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return _all(self.cur, name, params)

    def run(self, name: str, params: Mapping[str, Any]) -> None:
        self.cur.execute(F[name], params)

    def mark_managed(self, queue: str) -> None:
        """The newly managed queue's live items get the `flow` flag, and its default group and
        the groups of its live items join the walk."""
        self.cur.execute(F["mark_flow"], {"queue": queue})
        self.cur.execute(F["mark_groups"], {"queue": queue})

    def drop_if_dry(self, queue: str, grp: str) -> None:
        """Take a named group with neither a queued item nor a lease out of the walk
        (`active = 0`) until an item of it is enqueued or requeued (`activate`). Only when its
        row is free: an enqueue into it holds a shared lock on it until its commit."""
        if grp == "":
            return
        key = {"queue": queue, "grp": grp}
        if _one(self.cur, "lock_group", key) is None:
            return
        row = _one(self.cur, "group_has_work", key)
        if row is not None and not row[0]:
            self.cur.execute(F["deactivate_group"], key)


def read_policy(cur: Cursor, queue: str) -> QueuePolicy:
    """The queue's stored policy."""
    return flows.read_policy(_Sql(cur), queue)


def set_policy(cur: Cursor, policy: QueuePolicy) -> QueuePolicy:
    """Store the four limits (the paused flag kept); returns the stored policy."""
    return flows.set_policy(_Sql(cur), policy)


def set_paused(cur: Cursor, queue: str, paused: bool) -> QueuePolicy:
    """Set the paused flag (on the row every claim of the queue locks); returns the policy."""
    return flows.set_paused(_Sql(cur), queue, paused)


def set_grouped(cur: Cursor, queue: str) -> None:
    """Before the first item of `queue` in a group is inserted: the queue becomes grouped
    (managed for ever after)."""
    flows.set_grouped(_Sql(cur), queue)


def any_managed(cur: Cursor, queues: Sequence[str]) -> bool:
    """Whether any of `queues` is managed: the claim then takes through `take`."""
    row = _one(cur, "any_managed", {"queues": tuple(queues)})
    return row is not None and bool(row[0])


def is_managed(cur: Cursor, queue: str) -> bool:
    """Whether claims of `queue` take the flow-control path (an enqueue then calls
    `activate` for its items' groups)."""
    return flows.is_managed(_Sql(cur), queue)


def activate(cur: Cursor, queue: str, groups: Sequence[str]) -> None:
    """The groups of items just enqueued into managed `queue` are in the walk, and stay in it
    until this transaction commits (their rows read with a shared lock: see the module)."""
    wanted = sorted(set(groups))
    found = dict(_all(cur, "lock_groups", {"queue": queue, "groups": tuple(wanted)}))
    missing = [grp for grp in wanted if not found.get(grp)]
    if missing:
        _insert(cur, "activate_group", [(queue, grp) for grp in missing])


def activate_item(cur: Cursor, item_id: int) -> None:
    """A requeued item's group joins the walk again (nothing if its queue is not managed)."""
    row = _one(cur, "item_group", {"id": item_id})
    if row is not None:
        activate(cur, str(row[0]), [str(row[1])])


def take(
    cur: Cursor,
    queues: Sequence[str],
    worker: str,
    lease_us: int,
    limit: int,
    now_us: int,
    *,
    clock: bool = False,
) -> list[tuple[Any, ...]]:
    """The claim of queues of which at least one is managed (expired leases already reaped):
    lease up to `limit` items in the fair order within the policies; rows as the plain claim's
    plus the group. `clock`: `now_us` was read from the store's clock (not given by the caller),
    so the leases' time is read again after the counts (see the module docstring)."""
    # The lock that makes the limits exact and the pause linearisable (module docstring): a
    # claim without it could count the same free slot as another claim running beside it.
    rows = _all(cur, "lock_policies", {"queues": tuple(sorted(set(queues)))})
    picked = flows.FairClaim(_Sql(cur), now_us, limit).choose(queues, rows)
    if not picked:
        return []
    if clock:
        # The claim's time, read after every count it made: each lease end those counts saw
        # committed before they ran, so it came before this time (a lease the checker sees
        # ending after this claim began was counted as live).
        cur.execute(f"SELECT {CLOCK_SQL}")
        now_us = max(now_us, int(cur.fetchone()[0]))
    ids = tuple(item_id for item_id, _ in picked)
    locked = {int(row[0]) for row in _all(cur, "lock_items", {"ids": ids})}
    chosen = [(item_id, group) for item_id, group in picked if item_id in locked]
    if not chosen:
        return []
    order = ", ".join(str(item_id) for item_id, _ in chosen)
    params = {"ids": tuple(item_id for item_id, _ in chosen), "now": now_us, "worker": worker}
    params["lease_us"] = lease_us
    cur.execute(F["lease_ids"].replace("{order}", order), params)
    claimed = _all(cur, "leased_rows", {"ids": params["ids"]})
    served, records = flows.served_and_records(chosen, claimed)
    _raise_served(cur, served)
    if records:
        _insert(cur, "record_claim", [(q, g, now_us, token) for q, g, token in records])
    return claimed


def _raise_served(cur: Cursor, served: dict[tuple[str, str], int]) -> None:
    """Raise the served groups' `served` to the greatest token each was just given, on the
    rows no enqueue holds (a claim never waits for an enqueue; a group skipped here is ranked
    by its next claim: the fair order is best effort under concurrency)."""
    by_queue: dict[str, list[str]] = {}
    for queue, grp in served:
        by_queue.setdefault(queue, []).append(grp)
    for queue, groups in sorted(by_queue.items()):
        free = _all(cur, "lock_served", {"queue": queue, "groups": tuple(sorted(groups))})
        for (grp,) in free:
            cur.execute(F["served"], {"queue": queue, "grp": grp, "token": served[queue, grp]})


def rate_due(cur: Cursor, queues: Sequence[str], now_us: int) -> int | None:
    """The earliest time a rate window of `queues` moves past a claim that fills it, or None."""
    rated = _all(cur, "rated_policies", {"queues": tuple(queues)})
    return flows.rate_due(_Sql(cur), rated, now_us)


def live_by_group(cur: Cursor, queue: str, limit: int, now_us: int) -> list[tuple[str, int]]:
    """The busiest groups of `queue` by live leases, most first ('' the default group)."""
    rows = _all(cur, "live_by_group", {"queue": queue, "limit": limit, "now": now_us})
    return [(str(grp), int(n)) for grp, n in rows]
