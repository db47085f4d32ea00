"""The flow-control facts of a history and the checks of its invariants (docs/flow-control.md).

Limits are judged on the store's clock, where the store applied them: a lease is live from its
claim's store time (`expires_at - lease_seconds`) until the store-clock end read from the item's
attempt history (an `ended` fact), or its expiry, whichever is first. A lease with no `ended`
fact has no known end and never counts against another claim (its end may have come at once).
Every store time is taken as uncertain by `slack_us` (the store clock's resolution, a time read
just before the write lock): a lease counts only over its live window shrunk by the slack at both
ends, and a rate window only when its claims span less than the window minus twice the slack. So
a violation within the slack can be missed, and no violation is ever invented.

The policy in force is known from the recorded policy, pause and resume calls (client clock). A
claim is judged by the most permissive policy that may have been in force during its call; a
pause by its return, a resume from its invoke (a resume of unknown outcome may have taken effect
at any time after it was invoked; a pause of unknown outcome is never relied on).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workclaim.bench.history.recording import POLICY_KINDS, Event

FOREVER = 1 << 62
LIMITS = ("concurrency", "group_concurrency", "rate", "group_rate")

Limits = Mapping[str, Any]
Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StoreLease:
    """One granted lease on the store's clock (µs), with its claim call on the client's (ns)."""

    queue: str
    group: str | None
    item_id: int
    token: int | None
    op_id: str
    claimed_us: int
    end_us: int | None  # None: no known end, counted only at its own claim
    t_invoke: int
    t_ok: int


@dataclass(frozen=True, slots=True)
class PolicyCall:
    """One policy, pause or resume call on a queue: client times; `t_ok` FOREVER when its
    outcome is unknown (`sure` False)."""

    kind: str
    queue: str
    t_invoke: int
    t_ok: int
    sure: bool
    limits: Limits


@dataclass(slots=True)
class FlowFacts:
    """What the flow-control checks read."""

    leases: list[StoreLease]
    calls: dict[str, list[PolicyCall]]  # queue -> its policy/pause/resume calls
    slack_us: int

    @property
    def has_policy(self) -> bool:
        """The history shows policy calls (else the limits are not judged)."""
        return any(c.kind == "policy" for calls in self.calls.values() for c in calls)


def derive_flow(
    invokes: Mapping[str, Event],
    outcomes: Mapping[str, list[Event]],
    slack_us: int,
) -> FlowFacts:
    """The leases on the store's clock and the policy calls, from a history's calls."""
    ends: dict[tuple[int, int | None], int | None] = {}
    expiry: dict[tuple[int, int | None], int] = {}
    for op_id, outs in outcomes.items():
        inv = invokes.get(op_id)
        for out in outs:
            if out.get("kind") == "ended" and inv is None:
                key = (int(out["item_id"]), out.get("token"))
                at = out.get("ended_at_us")
                ends[key] = None if at is None else int(at)
            elif (
                inv is not None
                and inv.get("kind") == "heartbeat"
                and out["phase"] == "ok"
                and out.get("expires_at_us") is not None
            ):
                key = (int(inv["item_id"]), inv.get("token"))
                expiry[key] = max(expiry.get(key, 0), int(out["expires_at_us"]))
    leases: list[StoreLease] = []
    calls: dict[str, list[PolicyCall]] = defaultdict(list)
    for op_id, inv in invokes.items():
        kind = inv.get("kind")
        outs = outcomes.get(op_id, [])
        if kind in POLICY_KINDS:
            sure = bool(outs) and outs[0]["phase"] == "ok"
            if outs and outs[0]["phase"] == "fail":
                continue  # refused: it surely did not take effect
            queue = str(inv.get("queue", ""))
            calls[queue].append(
                PolicyCall(
                    kind=str(kind),
                    queue=queue,
                    t_invoke=int(inv["t_mono_ns"]),
                    t_ok=int(outs[0]["t_mono_ns"]) if sure else FOREVER,
                    sure=sure,
                    limits=dict(inv.get("policy") or {}),
                )
            )
            continue
        if kind != "claim":
            continue
        for out in outs:
            if out["phase"] != "ok" or out.get("item_id") is None:
                continue
            if out.get("expires_at_us") is None or out.get("lease_seconds") is None:
                continue  # no store time: not judged
            key = (int(out["item_id"]), out.get("token"))
            expires = max(int(out["expires_at_us"]), expiry.get(key, 0))
            claimed = int(out["expires_at_us"]) - round(float(out["lease_seconds"]) * 1e6)
            end: int | None = None
            if key in ends:
                ended = ends[key]
                end = expires if ended is None else min(ended, expires)
            leases.append(
                StoreLease(
                    queue=str(out.get("queue", "")),
                    group=out.get("group"),
                    item_id=key[0],
                    token=key[1],
                    op_id=op_id,
                    claimed_us=claimed,
                    end_us=end,
                    t_invoke=int(inv["t_mono_ns"]),
                    t_ok=int(out["t_mono_ns"]),
                )
            )
    for queue_calls in calls.values():
        queue_calls.sort(key=lambda c: c.t_invoke)
    return FlowFacts(leases, dict(calls), slack_us)


# -- the policy in force ---------------------------------------------------------------------------


def candidates(calls: Iterable[PolicyCall], t_invoke: int, t_ok: int) -> list[Limits]:
    """The limits that may have been in force at some moment of a call made over
    `[t_invoke, t_ok]`: every policy call that may have taken effect by `t_ok` and was not surely
    replaced by another before `t_invoke`; the empty policy (no limits) while none surely had."""
    policies = [c for c in calls if c.kind == "policy" and c.t_invoke < t_ok]
    found: list[Limits] = []
    for c in policies:
        replaced = any(
            d.sure and d.t_ok < t_invoke and c.t_ok < d.t_invoke for d in policies if d is not c
        )
        if not replaced:
            found.append(c.limits)
    if not any(c.sure and c.t_ok < t_invoke for c in policies):
        found.append({})
    return found


def loosest_limit(options: Iterable[Limits], name: str) -> int | None:
    """The highest of a concurrency limit over the candidate policies (None: one had none)."""
    values = [o.get(name) for o in options]
    if not values or any(v is None for v in values):
        return None
    return max(int(v) for v in values if v is not None)


def rates(options: Iterable[Limits], name: str) -> list[tuple[int, float]] | None:
    """The candidate policies' rates of `name` (None: one had none, so any count was allowed)."""
    found = []
    for o in options:
        rate = o.get(name)
        if rate is None:
            return None
        found.append((int(rate[0]), float(rate[1])))
    return found or None


class Pauses:
    """The pause and resume calls of one queue, indexed to find the pause that surely held over
    a claim call: it returned before the call started, and no resume may have taken effect after
    it (returned after the pause was invoked) and before the call returned (was invoked before).

    If any pause qualifies, the one invoked last among those returned before the call does (every
    resume that could undo it could undo an earlier one), so one bisect per side suffices.
    """

    def __init__(self, calls: Iterable[PolicyCall]) -> None:
        listed = list(calls)
        pauses = sorted((c for c in listed if c.kind == "pause" and c.sure), key=lambda c: c.t_ok)
        self.pause_ok = [c.t_ok for c in pauses]
        self.latest_pause: list[PolicyCall] = []
        for c in pauses:
            best = self.latest_pause[-1] if self.latest_pause else c
            self.latest_pause.append(c if c.t_invoke >= best.t_invoke else best)
        resumes = sorted((c for c in listed if c.kind == "resume"), key=lambda c: c.t_invoke)
        self.resume_invoke = [c.t_invoke for c in resumes]
        self.latest_resume_ok: list[int] = []
        for c in resumes:
            previous = self.latest_resume_ok[-1] if self.latest_resume_ok else c.t_ok
            self.latest_resume_ok.append(max(c.t_ok, previous))

    def held_over(self, t_invoke: int, t_ok: int) -> PolicyCall | None:
        """The pause surely in force over a call made over `[t_invoke, t_ok]`, or None."""
        i = bisect.bisect_left(self.pause_ok, t_invoke)
        if i == 0:
            return None
        pause = self.latest_pause[i - 1]
        j = bisect.bisect_left(self.resume_invoke, t_ok)
        if j and self.latest_resume_ok[j - 1] > pause.t_invoke:
            return None
        return pause


# -- the checks ----------------------------------------------------------------------------------


def _by_op(leases: Iterable[StoreLease]) -> dict[str, list[StoreLease]]:
    ops: dict[str, list[StoreLease]] = defaultdict(list)
    for lease in leases:
        ops[lease.op_id].append(lease)
    return ops


def _overloads(
    leases: list[StoreLease], slack_us: int, limit_of: Callable[[StoreLease], int | None]
) -> Iterable[tuple[StoreLease, int, int]]:
    """(claim, live leases after it, limit) for each claim call that left more live leases in
    this set than its limit: the call's own leases plus every other lease surely live at its
    store time (live window shrunk by the slack)."""
    windows = [
        (lease.claimed_us + slack_us, lease.end_us - slack_us)
        for lease in leases
        if lease.end_us is not None
    ]
    windows = [w for w in windows if w[0] < w[1]]
    starts = sorted(w[0] for w in windows)
    ends = sorted(w[1] for w in windows)
    for batch in _by_op(leases).values():
        first = batch[0]
        limit = limit_of(first)
        if limit is None:
            continue
        t = max(lease.claimed_us for lease in batch)
        others = bisect.bisect_right(starts, t) - bisect.bisect_right(ends, t)
        live = len(batch) + others
        if live > limit:
            yield first, live, limit


def _limit_for(facts: FlowFacts, name: str) -> Callable[[StoreLease], int | None]:
    def limit_of(lease: StoreLease) -> int | None:
        options = candidates(facts.calls.get(lease.queue, ()), lease.t_invoke, lease.t_ok)
        return loosest_limit(options, name)

    return limit_of


def check_concurrency(facts: FlowFacts, report: Report, *, per_group: bool) -> bool:
    """No claim leaves more live leases in its queue (or its group) than the limit allows."""
    name = "group_concurrency" if per_group else "concurrency"
    sets: dict[tuple[str, str | None], list[StoreLease]] = defaultdict(list)
    for lease in facts.leases:
        sets[(lease.queue, lease.group if per_group else None)].append(lease)
    limit_of = _limit_for(facts, name)
    for (queue, group), leases in sets.items():
        for claim, live, limit in _overloads(leases, facts.slack_us, limit_of):
            where = f"group {group!r} of {queue!r}" if per_group else f"queue {queue!r}"
            report(
                f"{where}: {live} live leases (limit {limit}) after claim {claim.op_id} "
                f"(item {claim.item_id}, store time {claim.claimed_us} µs)"
            )
    return facts.has_policy


def check_rate(facts: FlowFacts, report: Report, *, per_group: bool) -> bool:
    """No window of a rate's length holds more claims of the queue (or group) than its count:
    for each claim, the claims within `per_seconds` before it (store clock, minus the slack)."""
    name = "group_rate" if per_group else "rate"
    sets: dict[tuple[str, str | None], list[StoreLease]] = defaultdict(list)
    for lease in facts.leases:
        sets[(lease.queue, lease.group if per_group else None)].append(lease)
    for (queue, group), leases in sets.items():
        times = sorted(lease.claimed_us for lease in leases)
        for batch in _by_op(leases).values():
            first = batch[0]
            options = rates(
                candidates(facts.calls.get(queue, ()), first.t_invoke, first.t_ok), name
            )
            if options is None:
                continue
            t = max(lease.claimed_us for lease in batch)
            counts = []
            for count, per in options:
                low = t - round(per * 1e6) + 2 * facts.slack_us
                counts.append(
                    (bisect.bisect_right(times, t) - bisect.bisect_right(times, low), count)
                )
            if all(n > count for n, count in counts):
                where = f"group {group!r} of {queue!r}" if per_group else f"queue {queue!r}"
                n, count = max(counts, key=lambda c: c[1])
                report(
                    f"{where}: {n} claims (rate count {count}) in the window ending at claim "
                    f"{first.op_id} (store time {t} µs)"
                )
    return facts.has_policy


def check_paused(facts: FlowFacts, report: Report) -> bool:
    """No claim that started after a pause returned (and before any resume) took an item."""
    index = {queue: Pauses(calls) for queue, calls in facts.calls.items()}
    for batch in _by_op(facts.leases).values():
        first = batch[0]
        pauses = index.get(first.queue)
        pause = None if pauses is None else pauses.held_over(first.t_invoke, first.t_ok)
        if pause is not None:
            report(
                f"queue {first.queue!r}: claim {first.op_id} took item {first.item_id} after "
                f"a pause returned"
            )
    return any(c.kind == "pause" and c.sure for calls in facts.calls.values() for c in calls)
