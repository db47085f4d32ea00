"""Flow control on SQLite: stored policies and the claim of managed queues.

A queue is *managed* while it has a limit, is paused, or has ever had an item in a group
(`workclaim_policies.managed`). Claims of other queues take the plain path in backend.py; a claim
naming a managed queue runs `take` here, inside the claim's own write transaction, so the counts
it reads are exact under any number of claimers (SQLite has one writer at a time).

`take` picks items in the contract's fair order `(priority, k, served, run_at, id)` without
reading every group: for each priority (best first, from the plain claim index) it walks the
queue's active groups in fair order (the never-served ones by their first items, then by
`served` along `workclaim_groups_walk`), a page per statement with each group's first item of
that priority and its counts, and stops as soon as the batch is full.
Round 1 takes the first item of each group; only when every group has been seen and the batch is
not full do rounds 2, 3, ... take the second, third, ... items of the groups seen.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from heapq import merge
from typing import Any

from workclaim._time import seconds_to_micros
from workclaim.backends._queryfile import load_queries
from workclaim.backends.sqlite import schema
from workclaim.models import QueuePolicy, Rate

F = load_queries(schema.PACKAGE, "flow.sql")
WALK_SLACK = 16  # a walk page holds the groups the batch still needs plus these


def policy_of(queue: str, row: tuple[Any, ...] | None) -> QueuePolicy:
    """The QueuePolicy of a `policy` row (no row: no limits, not paused)."""
    if row is None:
        return QueuePolicy(queue)
    conc, gconc, rate_n, rate_s, grate_n, grate_s, paused = row[:7]
    return QueuePolicy(
        queue=queue,
        concurrency=conc,
        group_concurrency=gconc,
        rate=None if rate_n is None else Rate(rate_n, rate_s),
        group_rate=None if grate_n is None else Rate(grate_n, grate_s),
        paused=bool(paused),
    )


def read_policy(conn: sqlite3.Connection, queue: str) -> QueuePolicy:
    """The queue's stored policy."""
    return policy_of(queue, conn.execute(F["policy"], {"queue": queue}).fetchone())


def _was_managed(conn: sqlite3.Connection, queue: str) -> bool:
    row = conn.execute(F["policy"], {"queue": queue}).fetchone()
    return row is not None and bool(row[7])


def _mark(conn: sqlite3.Connection, queue: str, was_managed: bool) -> None:
    """After a change that may have made `queue` managed: if it just became so, bring its live
    items into the managed indexes and its groups into the walk."""
    row = conn.execute(F["policy"], {"queue": queue}).fetchone()
    if was_managed or row is None or not row[7]:
        return
    params = {"queue": queue}
    conn.execute(F["mark_queued"], params)
    conn.execute(F["mark_claimed"], params)
    conn.execute(F["mark_groups"], params)


def set_policy(conn: sqlite3.Connection, policy: QueuePolicy) -> QueuePolicy:
    """Store the four limits (the paused flag kept); returns the stored policy."""
    was = _was_managed(conn, policy.queue)
    rate, group_rate = policy.rate, policy.group_rate
    conn.execute(
        F["set_policy"],
        {
            "queue": policy.queue,
            "concurrency": policy.concurrency,
            "group_concurrency": policy.group_concurrency,
            "rate_count": None if rate is None else rate.count,
            "rate_seconds": None if rate is None else rate.per_seconds,
            "group_rate_count": None if group_rate is None else group_rate.count,
            "group_rate_seconds": None if group_rate is None else group_rate.per_seconds,
        },
    )
    if rate is None and group_rate is None:
        conn.execute(F["forget_claims"], {"queue": policy.queue})
    _mark(conn, policy.queue, was)
    return read_policy(conn, policy.queue)


def set_paused(conn: sqlite3.Connection, queue: str, paused: bool) -> QueuePolicy:
    """Set the paused flag; returns the stored policy."""
    was = _was_managed(conn, queue)
    conn.execute(F["set_paused"], {"queue": queue, "paused": 1 if paused else 0})
    _mark(conn, queue, was)
    return read_policy(conn, queue)


def set_grouped(conn: sqlite3.Connection, queue: str) -> None:
    """Before the first item of `queue` in a group is inserted: the queue becomes grouped
    (managed for ever after), its default group ranked by the tokens it was served."""
    row = conn.execute(F["policy"], {"queue": queue}).fetchone()
    if row is not None and row[8]:
        return
    conn.execute(F["set_grouped"], {"queue": queue})
    conn.execute(F["default_served"], {"queue": queue})
    _mark(conn, queue, row is not None and bool(row[7]))


def is_managed(conn: sqlite3.Connection, queue: str) -> bool:
    """Whether claims of `queue` take the flow-control path (an enqueue's items then join the
    managed indexes)."""
    row = conn.execute(F["managed"], {"queue": queue}).fetchone()
    return row is not None and bool(row[0])


def activate(conn: sqlite3.Connection, queue: str, groups: Sequence[str]) -> None:
    """The groups of items just enqueued into managed `queue` join the served-order walk."""
    conn.execute(F["activate_groups"], {"queue": queue, "groups": json.dumps(sorted(set(groups)))})


def activate_item(conn: sqlite3.Connection, item_id: int) -> None:
    """A requeued item's group joins the walk again (nothing if its queue is not managed)."""
    conn.execute(F["activate_item_group"], {"id": item_id})


@dataclass
class _Limits:
    """One claimed queue's policy as the claim applies it (rate windows in microseconds)."""

    queue: str
    managed: bool
    paused: bool = False
    concurrency: int | None = None
    group_concurrency: int | None = None
    rate: tuple[int, int] | None = None
    group_rate: tuple[int, int] | None = None
    room: float = math.inf  # how many more items the queue may take in this claim
    group_room: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, queue: str, row: tuple[Any, ...] | None) -> _Limits:
        if row is None or not row[8]:
            return cls(queue, managed=False)
        _, conc, gconc, rate_n, rate_s, grate_n, grate_s, paused, _ = row
        return cls(
            queue,
            managed=True,
            paused=bool(paused),
            concurrency=conc,
            group_concurrency=gconc,
            rate=None if rate_n is None else (rate_n, seconds_to_micros(rate_s)),
            group_rate=None if grate_n is None else (grate_n, seconds_to_micros(grate_s)),
        )

    @property
    def records_claims(self) -> bool:
        return self.rate is not None or self.group_rate is not None


@dataclass
class _Group:
    """A group met by the walk at one priority: its first items (run_at, id) and what it took."""

    limits: _Limits
    grp: str
    served: int
    items: list[tuple[int, int]]
    taken: int = 0
    complete: bool = False  # whether `items` holds all its claimable items of the priority


# A group as the walk meets it: (served, run_at, id of its first item, queue, group, live leases,
# claims in the group window).
_Met = tuple[int, int, int, str, str, int, int]


class _Claim:
    """One managed claim's state inside its transaction."""

    def __init__(self, conn: sqlite3.Connection, now_us: int, limit: int) -> None:
        self.conn = conn
        self.now = now_us
        self.remaining = limit
        self.chosen: list[tuple[int, _Group]] = []  # (item id, group) in claim order

    # -- limits --------------------------------------------------------------------------
    def _count(self, name: str, **params: Any) -> int:
        return int(self.conn.execute(F[name], params).fetchone()[0])

    def queue_room(self, lim: _Limits) -> None:
        """The queue's room in this claim: limits minus live leases and claims in the window."""
        if lim.paused:
            lim.room = 0
            return
        if lim.records_claims:
            longest = max(w for _, w in (lim.rate or (0, 0), lim.group_rate or (0, 0)))
            self.conn.execute(F["prune_claims"], {"queue": lim.queue, "cutoff": self.now - longest})
        room = math.inf
        if lim.concurrency is not None:
            live = self._count("live_in_queue", queue=lim.queue, now=self.now)
            room = min(room, lim.concurrency - live)
        if lim.rate is not None:
            count, window = lim.rate
            recent = self._count("claims_in_queue", queue=lim.queue, since=self.now - window)
            room = min(room, count - recent)
        lim.room = room

    def _group_room(self, lim: _Limits, grp: str, live: int, recent: int) -> float:
        """The group's room from its live leases and claims in the window (cached for the rest
        of the claim: it only shrinks as the claim takes)."""
        room = math.inf
        if lim.group_concurrency is not None:
            room = min(room, lim.group_concurrency - live)
        if lim.group_rate is not None:
            room = min(room, lim.group_rate[0] - recent)
        lim.group_room[grp] = room
        return room

    # -- the walk ------------------------------------------------------------------------
    def _groups(self, lim: _Limits, priority: int) -> Iterator[_Met]:
        """The queue's active groups with a claimable item of `priority`, in the fair order of
        their first such items: never-served groups first, by that item's (run_at, id), then
        by `served`, a page at a time. Groups met without any queued item leave the walk. A
        queue that is not managed is one group, never ranked."""
        key: dict[str, Any] = {"queue": lim.queue, "priority": priority, "now": self.now}
        if not lim.managed:
            first = self.conn.execute(F["plain_items"], {**key, "grp": "", "m": 1}).fetchone()
            if first is not None:
                yield (0, first[0], first[1], lim.queue, "", 0, 0)
            return
        key["live"] = lim.group_concurrency is not None
        key["recent"] = lim.group_rate is not None
        key["since"] = self.now - (lim.group_rate[1] if lim.group_rate is not None else 0)
        key["served"] = 0
        rows = self.conn.execute(F["never_served"], key).fetchall()
        while True:
            for served, grp, run_at, item_id, live, recent in rows:
                if item_id is None:
                    self._drop_if_dry(lim, grp)
                else:
                    yield (served, run_at, item_id, lim.queue, grp, live, recent)
            if rows and rows[0][0] == 0:  # the never-served list: now the served walk
                rows = []
            elif len(rows) < key.get("page", 0):
                return
            else:
                key["served"] = rows[-1][0] if rows else 0
            key["page"] = min(1000, self.remaining + WALK_SLACK)
            rows = self.conn.execute(F["walk_groups"], key).fetchall()

    def _drop_if_dry(self, lim: _Limits, grp: str) -> None:
        """Take a group with neither a queued item nor a lease out of the walk (`active = 0`)
        until an item of it is enqueued or requeued (`activate`)."""
        key = {"queue": lim.queue, "grp": grp}
        if not self.conn.execute(F["group_has_work"], key).fetchone()[0]:
            self.conn.execute(F["deactivate_group"], key)

    def _more(self, group: _Group, priority: int) -> None:
        """Read the group's next items of `priority` (rounds after the first), up to what the
        claim and the group's room could still take."""
        lim = group.limits
        room = min(self.remaining, lim.room, lim.group_room.get(group.grp, math.inf))
        m = group.taken + int(min(room, 1000))
        params = {"queue": lim.queue, "grp": group.grp, "priority": priority, "now": self.now}
        params["m"] = m
        found = self.conn.execute(
            F["group_items" if lim.managed else "plain_items"], params
        ).fetchall()
        group.items = [(run_at, item_id) for run_at, item_id in found]
        group.complete = len(found) < m

    def _room(self, group: _Group) -> bool:
        lim = group.limits
        return lim.room > 0 and lim.group_room.get(group.grp, math.inf) > 0

    def _take(self, group: _Group, item: tuple[int, int]) -> None:
        lim = group.limits
        lim.room -= 1
        lim.group_room[group.grp] = lim.group_room.get(group.grp, math.inf) - 1
        group.taken += 1
        self.remaining -= 1
        self.chosen.append((item[1], group))

    def tier(self, queues: Sequence[_Limits], priority: int) -> None:
        """Take items of one priority in round-robin across the queues' groups: round 1 in
        the groups' fair order, stopping once the batch is full; then, if every group was seen,
        rounds 2, 3, ... over the groups that took an item."""
        walks = [self._groups(lim, priority) for lim in queues]
        by_queue = {lim.queue: lim for lim in queues}
        seen: list[_Group] = []
        for served, run_at, item_id, queue, grp, live, recent in merge(*walks):
            if self.remaining <= 0:
                return
            lim = by_queue[queue]
            if lim.room <= 0:
                continue
            room = lim.group_room.get(grp)  # met at a better priority: what this claim left
            if room is None:
                room = self._group_room(lim, grp, live, recent)
            if room <= 0:
                continue
            group = _Group(lim, grp, served, [(run_at, item_id)])
            seen.append(group)
            self._take(group, group.items[0])
        k = 1
        while self.remaining > 0:
            rnd: list[_Group] = []
            for group in seen:
                if group.taken != k or not self._room(group):
                    continue
                if len(group.items) <= k and not group.complete:
                    self._more(group, priority)
                if len(group.items) > k:
                    rnd.append(group)
            if not rnd:
                return
            rnd.sort(key=lambda g: (g.served, g.items[k]))
            for group in rnd:
                if self.remaining > 0 and self._room(group):
                    self._take(group, group.items[k])
            k += 1

    def next_priority(self, queues: Sequence[_Limits], after: int) -> int | None:
        best: int | None = None
        for lim in queues:
            if lim.room <= 0:
                continue
            row = self.conn.execute(
                F["next_priority"], {"queue": lim.queue, "after": after, "now": self.now}
            ).fetchone()
            if row is not None and (best is None or row[0] < best):
                best = int(row[0])
        return best


def take(
    conn: sqlite3.Connection,
    queues: Sequence[str],
    worker: str,
    lease_us: int,
    limit: int,
    now_us: int,
) -> list[tuple[Any, ...]]:
    """The claim of queues of which at least one is managed (expired leases already reaped):
    lease up to `limit` items in the fair order within the policies; rows as the plain claim's
    plus the group. The caller advances the token counter past the rows, as for a plain claim."""
    rows = conn.execute(F["policies_of"], {"queues": json.dumps(list(queues))}).fetchall()
    by_queue = {row[0]: row for row in rows}
    claim = _Claim(conn, now_us, limit)
    limits = [_Limits.of(q, by_queue.get(q)) for q in queues]
    for lim in limits:
        claim.queue_room(lim)
    priority = claim.next_priority(limits, -(2**63))
    while priority is not None and claim.remaining > 0:
        claim.tier(limits, priority)
        priority = claim.next_priority(limits, priority)
    if not claim.chosen:
        return []
    ids = json.dumps([item_id for item_id, _ in claim.chosen])
    params = {"ids": ids, "now": now_us, "worker": worker, "lease_us": lease_us}
    claimed = conn.execute(F["claim_ids"], params).fetchall()
    tokens = {row[0]: row[3] for row in claimed}
    served: dict[tuple[str, str], int] = {}
    records: list[tuple[str, str, int]] = []
    for item_id, group in claim.chosen:
        lim = group.limits
        token = tokens[item_id]
        if lim.managed:
            key = (lim.queue, group.grp)
            served[key] = max(served.get(key, 0), token)
        if lim.records_claims:
            records.append((lim.queue, group.grp, token))
    if served:
        rows_json = json.dumps([[q, g, token] for (q, g), token in served.items()])
        conn.execute(F["served"], {"rows": rows_json})
    if records:
        conn.execute(F["record_claims"], {"rows": json.dumps(records), "at": now_us})
    return claimed


def rate_due(conn: sqlite3.Connection, queues: Sequence[str], now_us: int) -> int | None:
    """The earliest time a rate window of `queues` moves past a claim that fills it, or None."""
    due: list[int] = []
    rated = conn.execute(F["rated_policies"], {"queues": json.dumps(list(queues))}).fetchall()
    for queue, rate_n, rate_s, grate_n, grate_s in rated:
        if rate_n is not None:
            window = seconds_to_micros(rate_s)
            since = now_us - window
            recent = int(
                conn.execute(F["claims_in_queue"], {"queue": queue, "since": since}).fetchone()[0]
            )
            if recent >= rate_n:
                params = {"queue": queue, "since": since, "offset": recent - rate_n}
                row = conn.execute(F["queue_rate_frees"], params).fetchone()
                if row is not None:
                    due.append(int(row[0]) + window)
        if grate_n is not None:
            window = seconds_to_micros(grate_s)
            params2 = {"queue": queue, "since": now_us - window, "count": grate_n}
            first = conn.execute(F["group_rate_frees"], params2).fetchone()[0]
            if first is not None:
                due.append(int(first) + window)
    return min(due) if due else None
