"""A pure-Python reference of flow control's claim rules (docs/contract.md, "Flow control"): the
fair order and the limits, as the model test expects a store to apply them to one queue."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from workclaim import QueuePolicy, Rate


@dataclass(frozen=True)
class Candidate:
    """A claimable item as the rules see it."""

    id: int
    group: str | None
    priority: int
    run_at: datetime


def fair_order(
    candidates: Iterable[Candidate], served: Mapping[str | None, int]
) -> list[Candidate]:
    """The order a claim takes candidates in: `(priority, k, served, run_at, id)`, `k` the item's
    place among its group's candidates of its priority (1 for the first) and `served` the
    greatest token ever issued to an item of its group (0 if none)."""
    places: Counter[tuple[str | None, int]] = Counter()
    keyed = []
    for item in sorted(candidates, key=lambda c: (c.priority, c.run_at, c.id)):
        places[(item.group, item.priority)] += 1
        k = places[(item.group, item.priority)]
        keyed.append(((item.priority, k, served.get(item.group, 0), item.run_at, item.id), item))
    return [item for _, item in sorted(keyed, key=lambda pair: pair[0])]


def in_window(
    claims: Sequence[tuple[datetime, str | None]], rate: Rate, now: datetime
) -> list[str | None]:
    """The groups of the claims in the window `(now - per_seconds, now]`."""
    start = now - timedelta(seconds=rate.per_seconds)
    return [group for at, group in claims if start < at <= now]


def over(count: int, limit: int | None) -> bool:
    """Whether one more would take `count` past `limit` (None: no limit)."""
    return limit is not None and count + 1 > limit


def admitted(
    ordered: Sequence[Candidate],
    policy: QueuePolicy,
    live_groups: Sequence[str | None],
    claims: Sequence[tuple[datetime, str | None]],
    now: datetime,
    limit: int,
) -> list[Candidate]:
    """The candidates a claim of up to `limit` takes, in `ordered`'s order, skipping those the
    policy refuses: each taken only if, after taking it, the queue's and its group's live
    leases (`live_groups`: one entry per live lease) and claims in the rate windows (`claims`:
    one `(time, group)` per item claimed) stay within the limits; none while paused."""
    if policy.paused:
        return []
    live = len(live_groups)
    group_live = Counter(live_groups)
    rated = len(in_window(claims, policy.rate, now)) if policy.rate else 0
    group_rated = Counter(in_window(claims, policy.group_rate, now) if policy.group_rate else [])
    taken: list[Candidate] = []
    for item in ordered:
        if len(taken) == limit:
            break
        g = item.group
        rate_count = policy.rate.count if policy.rate else None
        group_rate_count = policy.group_rate.count if policy.group_rate else None
        if (
            over(live, policy.concurrency)
            or over(group_live[g], policy.group_concurrency)
            or over(rated, rate_count)
            or over(group_rated[g], group_rate_count)
        ):
            continue
        taken.append(item)
        live, rated = live + 1, rated + 1
        group_live[g] += 1
        group_rated[g] += 1
    return taken
