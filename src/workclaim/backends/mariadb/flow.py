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

`take` picks items in the contract's fair order `(priority, k, served, run_at, id)` as the
SQLite backend does, without reading every group: for each priority (best first) it walks the
queue's active groups in fair order (the never-served ones by their first items, then by
`served` along `workclaim_groups_walk`), a page per statement with each group's first item of
that priority and its counts, and stops as soon as the batch is full. Round 1 takes the first
item of each group; only when every group has been seen and the batch is not full do rounds 2,
3, ... take the second, third, ... items of the groups seen. The chosen items are then locked
(SKIP LOCKED: a plain claim of another queue named in the same claim may hold one) and leased
with tokens from the sequence in claim order.

A named group found with neither queued items nor leases leaves the walk (`active = 0`) until an
item of it is enqueued or requeued; enqueues read their groups' rows with a shared lock and the
claim deactivates only a row it can lock at once, so an item being enqueued never lands in a
group out of the walk. The default group never leaves it (an enqueue that read its queue as not
managed takes no lock on it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from heapq import merge
from typing import Any

from workclaim._time import seconds_to_micros
from workclaim.backends._queryfile import load_queries
from workclaim.backends.mariadb import schema
from workclaim.backends.mariadb.connection import CLOCK_SQL, Cursor
from workclaim.models import QueuePolicy, Rate

F = load_queries(schema.PACKAGE, "flow.sql")
WALK_SLACK = 16  # a walk page holds the groups the batch still needs plus these


def _one(cur: Cursor, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    cur.execute(F[name], params)
    row: tuple[Any, ...] | None = cur.fetchone()
    return row


def _all(cur: Cursor, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    cur.execute(F[name], params)
    return list(cur.fetchall())


def _insert(cur: Cursor, name: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """A multi-row INSERT of `rows`: the named query's one `VALUES (...)` repeated, one round
    trip."""
    head, _, tail = F[name].partition("VALUES")
    one, _, rest = tail.strip().partition(")")
    values = ", ".join([one + ")"] * len(rows))
    cur.execute(f"{head}VALUES {values}{rest}", [value for row in rows for value in row])


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


def read_policy(cur: Cursor, queue: str) -> QueuePolicy:
    """The queue's stored policy."""
    return policy_of(queue, _one(cur, "policy", {"queue": queue}))


def _was_managed(cur: Cursor, queue: str) -> bool:
    row = _one(cur, "policy", {"queue": queue})
    return row is not None and bool(row[7])


def _mark(cur: Cursor, queue: str, was_managed: bool) -> None:
    """After a change that may have made `queue` managed: if it just became so, its live items
    get the `flow` flag, and its default group and the groups of its live items join the
    walk."""
    row = _one(cur, "policy", {"queue": queue})
    if was_managed or row is None or not row[7]:
        return
    cur.execute(F["mark_flow"], {"queue": queue})
    cur.execute(F["mark_groups"], {"queue": queue})


def set_policy(cur: Cursor, policy: QueuePolicy) -> QueuePolicy:
    """Store the four limits (the paused flag kept); returns the stored policy."""
    was = _was_managed(cur, policy.queue)
    rate, group_rate = policy.rate, policy.group_rate
    cur.execute(
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
        cur.execute(F["forget_claims"], {"queue": policy.queue})
    _mark(cur, policy.queue, was)
    return read_policy(cur, policy.queue)


def set_paused(cur: Cursor, queue: str, paused: bool) -> QueuePolicy:
    """Set the paused flag (on the row every claim of the queue locks); returns the policy."""
    was = _was_managed(cur, queue)
    cur.execute(F["set_paused"], {"queue": queue, "paused": 1 if paused else 0})
    _mark(cur, queue, was)
    return read_policy(cur, queue)


def set_grouped(cur: Cursor, queue: str) -> None:
    """Before the first item of `queue` in a group is inserted: the queue becomes grouped
    (managed for ever after), its default group ranked by the tokens it was served."""
    row = _one(cur, "policy", {"queue": queue})
    if row is not None and row[8]:
        return
    cur.execute(F["set_grouped"], {"queue": queue})
    cur.execute(F["default_served"], {"queue": queue})
    _mark(cur, queue, row is not None and bool(row[7]))


def any_managed(cur: Cursor, queues: Sequence[str]) -> bool:
    """Whether any of `queues` is managed: the claim then takes through `take`."""
    row = _one(cur, "any_managed", {"queues": tuple(queues)})
    return row is not None and bool(row[0])


def is_managed(cur: Cursor, queue: str) -> bool:
    """Whether claims of `queue` take the flow-control path (an enqueue then calls
    `activate` for its items' groups)."""
    row = _one(cur, "managed", {"queue": queue})
    return row is not None and bool(row[0])


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

    def __init__(self, cur: Cursor, now_us: int, limit: int) -> None:
        self.cur = cur
        self.now = now_us
        self.remaining = limit
        self.chosen: list[tuple[int, _Group]] = []  # (item id, group) in claim order

    # -- limits --------------------------------------------------------------------------
    def _count(self, name: str, **params: Any) -> int:
        row = _one(self.cur, name, params)
        return 0 if row is None else int(row[0])

    def queue_room(self, lim: _Limits) -> None:
        """The queue's room in this claim: limits minus live leases and claims in the window."""
        if lim.paused:
            lim.room = 0
            return
        if lim.records_claims:
            longest = max(w for _, w in (lim.rate or (0, 0), lim.group_rate or (0, 0)))
            self.cur.execute(F["prune_claims"], {"queue": lim.queue, "cutoff": self.now - longest})
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
        by `served`, a page at a time. Groups met without any queued item may leave the walk.
        A queue that is not managed is one group, never ranked."""
        key: dict[str, Any] = {"queue": lim.queue, "priority": priority, "now": self.now}
        if not lim.managed:
            first = _one(self.cur, "plain_items", {**key, "m": 1})
            if first is not None:
                yield (0, int(first[0]), int(first[1]), lim.queue, "", 0, 0)
            return
        key["live"] = 1 if lim.group_concurrency is not None else 0
        key["recent"] = 1 if lim.group_rate is not None else 0
        key["since"] = self.now - (lim.group_rate[1] if lim.group_rate is not None else 0)
        key["served"] = 0
        rows = _all(self.cur, "never_served", key)
        page = 0
        while True:
            for served, grp, run_at, item_id, live, recent in rows:
                if item_id is None:
                    self._drop_if_dry(lim, grp)
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
            rows = _all(self.cur, "walk_groups", key)

    def _drop_if_dry(self, lim: _Limits, grp: str) -> None:
        """Take a named group with neither a queued item nor a lease out of the walk
        (`active = 0`) until an item of it is enqueued or requeued (`activate`). Only when its
        row is free: an enqueue into it holds a shared lock on it until its commit."""
        if grp == "":
            return
        key = {"queue": lim.queue, "grp": grp}
        if _one(self.cur, "lock_group", key) is None:
            return
        row = _one(self.cur, "group_has_work", key)
        if row is not None and not row[0]:
            self.cur.execute(F["deactivate_group"], key)

    def _more(self, group: _Group, priority: int) -> None:
        """Read the group's next items of `priority` (rounds after the first), up to what the
        claim and the group's room could still take."""
        lim = group.limits
        room = min(self.remaining, lim.room, lim.group_room.get(group.grp, math.inf))
        m = group.taken + int(min(room, 1000))
        params = {"queue": lim.queue, "grp": group.grp, "priority": priority, "now": self.now}
        params["m"] = m
        found = _all(self.cur, "group_items" if lim.managed else "plain_items", params)
        group.items = [(int(run_at), int(item_id)) for run_at, item_id in found]
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
            row = _one(
                self.cur, "next_priority", {"queue": lim.queue, "after": after, "now": self.now}
            )
            if row is not None and (best is None or row[0] < best):
                best = int(row[0])
        return best


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
    by_queue = {row[0]: row for row in rows}
    claim = _Claim(cur, now_us, limit)
    limits = [_Limits.of(q, by_queue.get(q)) for q in queues]
    for lim in limits:
        claim.queue_room(lim)
    priority = claim.next_priority(limits, -(2**63))
    while priority is not None and claim.remaining > 0:
        claim.tier(limits, priority)
        priority = claim.next_priority(limits, priority)
    if not claim.chosen:
        return []
    if clock:
        # The claim's time, read after every count it made: each lease end those counts saw
        # committed before they ran, so it came before this time (a lease the checker sees
        # ending after this claim began was counted as live).
        cur.execute(f"SELECT {CLOCK_SQL}")
        now_us = max(now_us, int(cur.fetchone()[0]))
    ids = tuple(item_id for item_id, _ in claim.chosen)
    locked = {int(row[0]) for row in _all(cur, "lock_items", {"ids": ids})}
    chosen = [(item_id, group) for item_id, group in claim.chosen if item_id in locked]
    if not chosen:
        return []
    order = ", ".join(str(item_id) for item_id, _ in chosen)
    params = {"ids": tuple(item_id for item_id, _ in chosen), "now": now_us, "worker": worker}
    params["lease_us"] = lease_us
    cur.execute(F["lease_ids"].replace("{order}", order), params)
    claimed = _all(cur, "leased_rows", {"ids": params["ids"]})
    tokens = {int(row[0]): int(row[3]) for row in claimed}
    served: dict[tuple[str, str], int] = {}
    records: list[tuple[str, str, int, int]] = []
    for item_id, group in chosen:
        lim = group.limits
        token = tokens[item_id]
        if lim.managed:
            key = (lim.queue, group.grp)
            served[key] = max(served.get(key, 0), token)
        if lim.records_claims:
            records.append((lim.queue, group.grp, now_us, token))
    _raise_served(cur, served)
    if records:
        _insert(cur, "record_claim", records)
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
    due: list[int] = []
    rated = _all(cur, "rated_policies", {"queues": tuple(queues)})
    for queue, rate_n, rate_s, grate_n, grate_s in rated:
        if rate_n is not None:
            window = seconds_to_micros(rate_s)
            since = now_us - window
            row = _one(cur, "claims_in_queue", {"queue": queue, "since": since})
            recent = 0 if row is None else int(row[0])
            if recent >= rate_n:
                params = {"queue": queue, "since": since, "offset": recent - rate_n}
                row = _one(cur, "queue_rate_frees", params)
                if row is not None:
                    due.append(int(row[0]) + window)
        if grate_n is not None:
            window = seconds_to_micros(grate_s)
            params2 = {"queue": queue, "since": now_us - window, "count": grate_n}
            first = _one(cur, "group_rate_frees", params2)
            if first is not None and first[0] is not None:
                due.append(int(first[0]) + window)
    return min(due) if due else None


def live_by_group(cur: Cursor, queue: str, limit: int, now_us: int) -> list[tuple[str, int]]:
    """The busiest groups of `queue` by live leases, most first ('' the default group)."""
    rows = _all(cur, "live_by_group", {"queue": queue, "limit": limit, "now": now_us})
    return [(str(grp), int(n)) for grp, n in rows]
