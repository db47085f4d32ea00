"""Flow control shared by SQLite and MariaDB (`sqlite/flow.py`, `mariadb/flow.py`): the stored
policies' bookkeeping and the fair-order walk of a managed claim, both orchestrated in Python over
integer-microsecond rows.

A queue is *managed* while it has a limit, is paused, or has ever had an item in a group
(`workclaim_policies.managed`); when a change makes it so, the backend marks its live items and
groups (`mark_managed`).

`FairClaim.choose` picks items in the contract's fair order `(priority, k, served, run_at, id)`
within the queues' policies, without reading every group: for each priority (best first) it walks
each queue's active groups in fair order (the never-served ones by their first items, then by
`served` along `workclaim_groups_walk`), a page per statement with each group's first item of
that priority and its counts, and stops as soon as the batch is full. Round 1 takes the first
item of each group; only when every group has been seen and the batch is not full do rounds 2,
3, ... take the second, third, ... items of the groups seen. A claim of several queues none of
which is grouped (`workclaim_policies.grouped`) instead merges the queues' items in plain
(run_at, id) order at each priority (`plain_tier`), as the contract keeps it without groups.

What differs per backend is behind `FlowStatements`: the named statements of its `flow.sql` (the
same names, parameters and columns in both), run inside the verb's transaction, and the two
steps that differ, `mark_managed` (its indexes) and `drop_if_dry` (its locking). Locking the
policies, leasing the chosen items, enqueue's group rows and the transaction stay in each
backend's flow.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from heapq import merge
from typing import Any, Protocol

from workclaim._time import seconds_to_micros
from workclaim.models import QueuePolicy, Rate

WALK_SLACK = 16  # a walk page holds the groups the batch still needs plus these
_Row = tuple[Any, ...]


class FlowStatements(Protocol):
    """A backend's flow.sql statements, by name, on the connection of the running transaction."""

    def one(self, name: str, params: Mapping[str, Any]) -> _Row | None:
        """The statement's first row (None: no row)."""
        ...

    def all(self, name: str, params: Mapping[str, Any]) -> list[_Row]:
        """All the statement's rows."""
        ...

    def run(self, name: str, params: Mapping[str, Any]) -> None:
        """Run a statement for its effect."""
        ...

    def drop_if_dry(self, queue: str, grp: str) -> None:
        """The walk met `grp` without a claimable item: take it out of the walk (`active = 0`)
        if it holds neither a queued item nor a lease, as far as the backend's locking allows."""
        ...

    def mark_managed(self, queue: str) -> None:
        """`queue` just became managed: bring its live items into the managed indexes and its
        groups into the walk."""
        ...


def policy_of(queue: str, row: _Row | None) -> QueuePolicy:
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


def policy_params(policy: QueuePolicy) -> dict[str, Any]:
    """The `set_policy` statement's parameters for `policy`'s four limits (every backend's
    policies row has these columns)."""
    rate, group_rate = policy.rate, policy.group_rate
    return {
        "concurrency": policy.concurrency,
        "group_concurrency": policy.group_concurrency,
        "rate_count": None if rate is None else rate.count,
        "rate_seconds": None if rate is None else rate.per_seconds,
        "group_rate_count": None if group_rate is None else group_rate.count,
        "group_rate_seconds": None if group_rate is None else group_rate.per_seconds,
    }


def read_policy(sql: FlowStatements, queue: str) -> QueuePolicy:
    """The queue's stored policy."""
    return policy_of(queue, sql.one("policy", {"queue": queue}))


def _was_managed(sql: FlowStatements, queue: str) -> bool:
    row = sql.one("policy", {"queue": queue})
    return row is not None and bool(row[7])


def _mark(sql: FlowStatements, queue: str, was_managed: bool) -> None:
    """After a change that may have made `queue` managed: if it just became so, mark it."""
    row = sql.one("policy", {"queue": queue})
    if was_managed or row is None or not row[7]:
        return
    sql.mark_managed(queue)


def set_policy(sql: FlowStatements, policy: QueuePolicy) -> QueuePolicy:
    """Store the four limits (the paused flag kept); returns the stored policy."""
    was = _was_managed(sql, policy.queue)
    sql.run("set_policy", {"queue": policy.queue, **policy_params(policy)})
    if policy.rate is None and policy.group_rate is None:
        sql.run("forget_claims", {"queue": policy.queue})
    _mark(sql, policy.queue, was)
    return read_policy(sql, policy.queue)


def set_paused(sql: FlowStatements, queue: str, paused: bool) -> QueuePolicy:
    """Set the paused flag; returns the stored policy."""
    was = _was_managed(sql, queue)
    sql.run("set_paused", {"queue": queue, "paused": 1 if paused else 0})
    _mark(sql, queue, was)
    return read_policy(sql, queue)


def set_grouped(sql: FlowStatements, queue: str) -> None:
    """Before the first item of `queue` in a group is inserted: the queue becomes grouped
    (managed for ever after), its default group ranked by the tokens it was served."""
    row = sql.one("policy", {"queue": queue})
    if row is not None and row[8]:
        return
    sql.run("set_grouped", {"queue": queue})
    sql.run("default_served", {"queue": queue})
    _mark(sql, queue, row is not None and bool(row[7]))


def is_managed(sql: FlowStatements, queue: str) -> bool:
    """Whether claims of `queue` take the flow-control path (an enqueue then activates its
    items' groups)."""
    row = sql.one("managed", {"queue": queue})
    return row is not None and bool(row[0])


@dataclass
class Limits:
    """One claimed queue's policy as the claim applies it (rate windows in microseconds)."""

    queue: str
    managed: bool
    paused: bool = False
    grouped: bool = False  # whether the queue has ever had an item in a group
    concurrency: int | None = None
    group_concurrency: int | None = None
    rate: tuple[int, int] | None = None
    group_rate: tuple[int, int] | None = None
    room: float = math.inf  # how many more items the queue may take in this claim
    group_room: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, queue: str, row: _Row | None) -> Limits:
        """From a `policies_of` / `lock_policies` row (None or not managed: no limits)."""
        if row is None or not row[8]:
            return cls(queue, managed=False)
        _, conc, gconc, rate_n, rate_s, grate_n, grate_s, paused, _, grouped = row
        return cls(
            queue,
            managed=True,
            paused=bool(paused),
            grouped=bool(grouped),
            concurrency=conc,
            group_concurrency=gconc,
            rate=None if rate_n is None else (rate_n, seconds_to_micros(rate_s)),
            group_rate=None if grate_n is None else (grate_n, seconds_to_micros(grate_s)),
        )

    @property
    def records_claims(self) -> bool:
        """Whether the claim records its items for a rate window."""
        return self.rate is not None or self.group_rate is not None


@dataclass
class Group:
    """A group met by the walk at one priority: its first items (run_at, id) and what it took."""

    limits: Limits
    grp: str
    served: int
    items: list[tuple[int, int]]
    taken: int = 0
    complete: bool = False  # whether `items` holds all its claimable items of the priority


# A group as the walk meets it: (served, run_at, id of its first item, queue, group, live leases,
# claims in the group window).
Met = tuple[int, int, int, str, str, int, int]


class FairClaim:
    """One managed claim's walk inside its transaction; `chosen` is what `choose` picked."""

    def __init__(self, sql: FlowStatements, now_us: int, limit: int) -> None:
        self.sql = sql
        self.now = now_us
        self.remaining = limit
        self.chosen: list[tuple[int, Group]] = []  # (item id, group) in claim order

    def choose(self, queues: Sequence[str], policies: Sequence[_Row]) -> list[tuple[int, Group]]:
        """Pick up to the claim's limit of items of `queues` (their `policies` rows, by queue
        name first) in the fair order within the policies: (item id, group) in claim order."""
        by_queue = {row[0]: row for row in policies}
        limits = [Limits.of(q, by_queue.get(q)) for q in queues]
        for lim in limits:
            self.queue_room(lim)
        # Without groups in any claimed queue, the contract keeps the plain (priority, run_at,
        # id) order across the queues (issue 15): each queue's default group is not a turn of
        # its own. One queue is one group either way, so only a claim of several takes it.
        plain = len(limits) > 1 and not any(lim.grouped for lim in limits)
        tier = self.plain_tier if plain else self.tier
        priority = self.next_priority(limits, -(2**63))
        while priority is not None and self.remaining > 0:
            tier(limits, priority)
            priority = self.next_priority(limits, priority)
        return self.chosen

    # -- limits --------------------------------------------------------------------------
    def _count(self, name: str, **params: Any) -> int:
        row = self.sql.one(name, params)
        return 0 if row is None else int(row[0])

    def queue_room(self, lim: Limits) -> None:
        """The queue's room in this claim: limits minus live leases and claims in the window."""
        if lim.paused:
            lim.room = 0
            return
        if lim.records_claims:
            longest = max(w for _, w in (lim.rate or (0, 0), lim.group_rate or (0, 0)))
            self.sql.run("prune_claims", {"queue": lim.queue, "cutoff": self.now - longest})
        room = math.inf
        if lim.concurrency is not None:
            live = self._count("live_in_queue", queue=lim.queue, now=self.now)
            room = min(room, lim.concurrency - live)
        if lim.rate is not None:
            count, window = lim.rate
            recent = self._count("claims_in_queue", queue=lim.queue, since=self.now - window)
            room = min(room, count - recent)
        lim.room = room

    def _group_room(self, lim: Limits, grp: str, live: int, recent: int) -> float:
        """The group's room from its live leases and claims in the window (cached for the rest
        of the claim: it only shrinks as the claim takes)."""
        room = math.inf
        if lim.group_concurrency is not None:
            room = min(room, lim.group_concurrency - live)
        if lim.group_rate is not None:
            room = min(room, lim.group_rate[0] - recent)
        lim.group_room[grp] = room
        return room

    def _room_of(self, lim: Limits, grp: str, live: int, recent: int) -> float:
        """The group's room in this claim: once met (at a better priority), what this claim
        left of it; else from its live leases and claims in the window."""
        room = lim.group_room.get(grp)
        return self._group_room(lim, grp, live, recent) if room is None else room

    # -- the walk ------------------------------------------------------------------------
    def _groups(self, lim: Limits, priority: int) -> Iterator[Met]:
        """The queue's active groups with a claimable item of `priority`, in the fair order of
        their first such items: never-served groups first, by that item's (run_at, id), then
        by `served`, a page at a time. Groups met without any queued item may leave the walk
        (`drop_if_dry`). A queue that is not managed is one group, never ranked."""
        key: dict[str, Any] = {"queue": lim.queue, "priority": priority, "now": self.now}
        if not lim.managed:
            first = self.sql.one("plain_items", {**key, "grp": "", "m": 1})
            if first is not None:
                yield (0, int(first[0]), int(first[1]), lim.queue, "", 0, 0)
            return
        key["live"] = 1 if lim.group_concurrency is not None else 0
        key["recent"] = 1 if lim.group_rate is not None else 0
        key["since"] = self.now - (lim.group_rate[1] if lim.group_rate is not None else 0)
        key["served"] = 0
        rows = self.sql.all("never_served", key)
        page = 0
        while True:
            for served, grp, run_at, item_id, live, recent in rows:
                if item_id is None:
                    self.sql.drop_if_dry(lim.queue, grp)
                else:
                    yield (
                        int(served),
                        int(run_at),
                        int(item_id),
                        lim.queue,
                        grp,
                        int(live),
                        int(recent),
                    )
            if rows and int(rows[0][0]) == 0:  # the never-served list: now the served walk
                rows = []
            elif len(rows) < page:
                return
            else:
                key["served"] = int(rows[-1][0]) if rows else 0
            page = key["page"] = min(1000, self.remaining + WALK_SLACK)
            rows = self.sql.all("walk_groups", key)

    def _more(self, group: Group, priority: int) -> None:
        """Read the group's next items of `priority` (rounds after the first), up to what the
        claim and the group's room could still take."""
        lim = group.limits
        room = min(self.remaining, lim.room, lim.group_room.get(group.grp, math.inf))
        m = group.taken + int(min(room, 1000))
        params = {"queue": lim.queue, "grp": group.grp, "priority": priority, "now": self.now}
        params["m"] = m
        found = self.sql.all("group_items" if lim.managed else "plain_items", params)
        group.items = [(int(run_at), int(item_id)) for run_at, item_id in found]
        group.complete = len(found) < m

    @staticmethod
    def _room(group: Group) -> bool:
        lim = group.limits
        return lim.room > 0 and lim.group_room.get(group.grp, math.inf) > 0

    def _take(self, group: Group, item: tuple[int, int]) -> None:
        lim = group.limits
        lim.room -= 1
        lim.group_room[group.grp] = lim.group_room.get(group.grp, math.inf) - 1
        group.taken += 1
        self.remaining -= 1
        self.chosen.append((item[1], group))

    def tier(self, queues: Sequence[Limits], priority: int) -> None:
        """Take items of one priority in round-robin across the queues' groups: round 1 in
        the groups' fair order, stopping once the batch is full; then, if every group was seen,
        rounds 2, 3, ... over the groups that took an item."""
        walks = [self._groups(lim, priority) for lim in queues]
        by_queue = {lim.queue: lim for lim in queues}
        seen: list[Group] = []
        for served, run_at, item_id, queue, grp, live, recent in merge(*walks):
            if self.remaining <= 0:
                return
            lim = by_queue[queue]
            if lim.room <= 0 or self._room_of(lim, grp, live, recent) <= 0:
                continue
            group = Group(lim, grp, served, [(run_at, item_id)])
            seen.append(group)
            self._take(group, group.items[0])
        k = 1
        while self.remaining > 0:
            rnd: list[Group] = []
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

    def _items(self, group: Group, priority: int) -> Iterator[tuple[int, int, Group]]:
        """The group's items of `priority` as (run_at, id, group) in (run_at, id) order, read a
        page at a time while the claim and the group's room could take more: no more than that
        room (`_more`), and the consumer takes each item before the next is read."""
        k = 0
        while True:
            if k < len(group.items):
                yield (*group.items[k], group)
                k += 1
            elif group.complete or self.remaining <= 0 or not self._room(group):
                return
            else:
                self._more(group, priority)
                if len(group.items) <= k:
                    return

    def plain_tier(self, queues: Sequence[Limits], priority: int) -> None:
        """Take items of one priority in plain (run_at, id) order merged across queues none of
        which uses groups (each is its default group alone), skipping what a queue's limits
        refuse: a queue without room left contributes nothing more."""
        streams: list[Iterator[tuple[int, int, Group]]] = []
        for lim in queues:
            if lim.room <= 0:
                continue
            for served, run_at, item_id, _, grp, live, recent in self._groups(lim, priority):
                if self._room_of(lim, grp, live, recent) <= 0:
                    continue
                group = Group(lim, grp, served, [(run_at, item_id)])
                streams.append(self._items(group, priority))
        # A stream reads no more items than its queue's room, so each item met may be taken.
        for run_at, item_id, group in merge(*streams, key=lambda e: (e[0], e[1])):
            if self.remaining <= 0:
                return
            self._take(group, (run_at, item_id))

    def next_priority(self, queues: Sequence[Limits], after: int) -> int | None:
        """The best priority after `after` with a claimable item in a queue with room."""
        best: int | None = None
        for lim in queues:
            if lim.room <= 0:
                continue
            row = self.sql.one(
                "next_priority", {"queue": lim.queue, "after": after, "now": self.now}
            )
            if row is not None and (best is None or row[0] < best):
                best = int(row[0])
        return best


def served_and_records(
    chosen: Sequence[tuple[int, Group]], claimed: Sequence[_Row]
) -> tuple[dict[tuple[str, str], int], list[tuple[str, str, int]]]:
    """After the chosen items were leased (`claimed`: claim rows, the token fourth): the greatest
    token each managed (queue, group) was given, its new `served`, and the (queue, group, token)
    claims to record for rate windows, in claim order."""
    tokens = {int(row[0]): int(row[3]) for row in claimed}
    served: dict[tuple[str, str], int] = {}
    records: list[tuple[str, str, int]] = []
    for item_id, group in chosen:
        lim = group.limits
        token = tokens[item_id]
        if lim.managed:
            key = (lim.queue, group.grp)
            served[key] = max(served.get(key, 0), token)
        if lim.records_claims:
            records.append((lim.queue, group.grp, token))
    return served, records


def rate_due(sql: FlowStatements, rated: Sequence[_Row], now_us: int) -> int | None:
    """The earliest time a rate window of the `rated_policies` rows' queues moves past a claim
    that fills it, or None."""
    due: list[int] = []
    for queue, rate_n, rate_s, grate_n, grate_s in rated:
        if rate_n is not None:
            window = seconds_to_micros(rate_s)
            since = now_us - window
            row = sql.one("claims_in_queue", {"queue": queue, "since": since})
            recent = 0 if row is None else int(row[0])
            if recent >= rate_n:
                params = {"queue": queue, "since": since, "offset": recent - rate_n}
                row = sql.one("queue_rate_frees", params)
                if row is not None:
                    due.append(int(row[0]) + window)
        if grate_n is not None:
            window = seconds_to_micros(grate_s)
            params2 = {"queue": queue, "since": now_us - window, "count": grate_n}
            first = sql.one("group_rate_frees", params2)
            if first is not None and first[0] is not None:
                due.append(int(first[0]) + window)
    return min(due) if due else None
