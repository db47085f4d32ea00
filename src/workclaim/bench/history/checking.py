"""Checking histories: one function per invariant, each registered under its name in `CHECKS`.

`check` derives the facts every invariant reads once (`Facts`: calls, grants, the windows and
ends of leases), then runs each registered check over them. It is O(n log n) and judges
conservatively: a lease counts as held only over its sure-held window, so a delay between the
store and the client can hide a violation but never invent one.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workclaim.bench.history.flow import (
    FlowFacts,
    check_concurrency,
    check_paused,
    check_rate,
    derive_flow,
)
from workclaim.bench.history.recording import FENCED_KINDS, Event, load_history

INVARIANTS = {
    "lease_overlap": "two leases of one item held at once (sure-held windows overlap)",
    "token_reused": "an (item, token) pair handed out twice",
    "token_order": "a grant's token not above a grant that surely came before it",
    "stale_accepted": "a heartbeat/complete/release/fail accepted with a superseded token",
    "double_completion": "more than one accepted completion for an item",
    "redelivery_after_complete": "an item claimed by a call made after its completion returned",
    "unexpected_item": "an item that was never enqueued was claimed or completed",
    "lost_item": "an enqueued item neither done nor dead at the end",
    "concurrency_exceeded": "more live leases in a queue than its concurrency (store clock)",
    "group_concurrency_exceeded": "more live leases in a group than group_concurrency",
    "rate_exceeded": "more claims of a queue in a window of per_seconds than the rate's count",
    "group_rate_exceeded": "more claims of a group in a window than group_rate's count",
    "claimed_while_paused": "a claim started after a pause returned took an item of the queue",
}

FOREVER = 1 << 62  # the end of a lease never ended that never expires: the end of the history
EXAMPLES = 5  # examples kept per invariant
STORE_SLACK_US = 1_000  # how far a recorded store-clock time may be from the store's own step


@dataclass(slots=True)
class _Call:
    """One op: its invoke event and its outcome events."""

    invoke: Event | None = None
    outcomes: list[Event] = field(default_factory=list)

    @property
    def t_invoke(self) -> int:
        return int((self.invoke or self.outcomes[0])["t_mono_ns"])

    @property
    def phase(self) -> str:
        return str(self.outcomes[0]["phase"]) if self.outcomes else "info"


@dataclass(frozen=True, slots=True)
class Grant:
    """One lease handed out by a successful claim."""

    item_id: int
    token: int | None
    t_invoke: int
    t_ok: int
    lease_ns: int | None  # None: held until ended (strategies without expiry)
    op_id: str
    worker: str | None


@dataclass(slots=True)
class CheckResult:
    """Counts per invariant (all must be 0), what the history held, and a few examples."""

    violations: dict[str, int]
    counts: dict[str, int]
    examples: dict[str, list[str]]
    checked: dict[str, bool]

    @property
    def ok(self) -> bool:
        """True when no invariant is violated."""
        return not any(self.violations.values())

    @property
    def duplicates(self) -> int:
        """Leases of one item granted while another was surely live, or under a reused token."""
        return self.violations["lease_overlap"] + self.violations["token_reused"]

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able data."""
        return {
            "ok": self.ok,
            "violations": dict(self.violations),
            "counts": dict(self.counts),
            "checked": dict(self.checked),
            "examples": {k: v for k, v in self.examples.items() if v},
        }

    def summary(self) -> str:
        """A few lines for a terminal."""
        lines = [
            "history: "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()) if v or k == "ops")
        ]
        for name, text in INVARIANTS.items():
            mark = "ok  " if self.violations[name] == 0 else "FAIL"
            note = "" if self.checked[name] else " (not checked: no data)"
            lines.append(f"  {mark} {name}: {self.violations[name]}  {text}{note}")
            lines.extend(f"         e.g. {ex}" for ex in self.examples[name][:3])
        lines.append("result: " + ("OK" if self.ok else "VIOLATIONS FOUND"))
        return "\n".join(lines)


# -- the facts every invariant reads -------------------------------------------------------------

LeaseKey = tuple[int, int | None]  # (item, token)


@dataclass(slots=True)
class Facts:
    """What the checks read, derived once from the history (plus the caller's final state and
    clock slack). Times are `t_mono_ns` values."""

    calls: dict[str, _Call]
    grants: list[Grant]
    by_item: dict[int, list[Grant]]  # the grants of each item
    # (kind, item, token) -> when the first try of that fenced call was invoked
    first_invoke: dict[tuple[str, int, int | None], int]
    end_invoke: dict[LeaseKey, int]  # a lease ended no later than this (complete/release/fail)
    hb_until: dict[LeaseKey, int]  # an accepted heartbeat made the lease surely held until this
    completions: dict[int, set[tuple[int | None, str | None]]]  # item -> {(token, worker)}
    completed_at: dict[int, int]  # item -> when its first accepted completion returned
    dead: set[int]  # items an accepted fail made dead
    enqueued: set[int]
    enqueue_unknown: int  # enqueues whose outcome is unknown
    touched: set[int]  # items granted, or named by a fenced call
    # item -> (its grants' t_ok ascending, the highest token granted up to each of them)
    grant_order: dict[int, tuple[list[int], list[int]]]
    counts: Counter[str]
    final_state: Mapping[int, str] | None
    clock_slack_ns: int
    flow: FlowFacts  # leases on the store's clock and the policy calls (flow control)

    @property
    def has_enqueues(self) -> bool:
        """The history shows enqueues (of known or unknown outcome)."""
        return bool(self.enqueued) or self.enqueue_unknown > 0


def _calls(events: Iterable[Event]) -> dict[str, _Call]:
    calls: dict[str, _Call] = defaultdict(_Call)
    for event in events:
        call = calls[str(event["op_id"])]
        if event["phase"] == "invoke":
            call.invoke = event
        else:
            call.outcomes.append(event)
    return calls


def _grants(calls: Mapping[str, _Call]) -> list[Grant]:
    grants = []
    for op_id, call in calls.items():
        if call.invoke is None or call.invoke["kind"] != "claim":
            continue
        for out in call.outcomes:
            if out["phase"] != "ok" or out.get("item_id") is None:
                continue
            lease = out.get("lease_seconds", call.invoke.get("lease_seconds"))
            grants.append(
                Grant(
                    item_id=int(out["item_id"]),
                    token=None if out.get("token") is None else int(out["token"]),
                    t_invoke=call.t_invoke,
                    t_ok=int(out["t_mono_ns"]),
                    lease_ns=None if lease is None else round(float(lease) * 1e9),
                    op_id=op_id,
                    worker=call.invoke.get("worker"),
                )
            )
    return grants


def _grant_order(by_item: Mapping[int, list[Grant]]) -> dict[int, tuple[list[int], list[int]]]:
    """Per item, its tokened grants by return time and the running maximum of their tokens: a
    bisect then finds the highest token surely granted before a moment."""
    order: dict[int, tuple[list[int], list[int]]] = {}
    for item, item_grants in by_item.items():
        by_ok = sorted((g for g in item_grants if g.token is not None), key=lambda g: g.t_ok)
        prefix_max: list[int] = []
        best = -1
        for g in by_ok:
            best = max(best, int(g.token or 0))
            prefix_max.append(best)
        order[item] = ([g.t_ok for g in by_ok], prefix_max)
    return order


def derive_facts(
    events: Iterable[Event],
    *,
    final_state: Mapping[int, str] | None = None,
    clock_slack_ns: int = 0,
    store_slack_us: int = STORE_SLACK_US,
) -> Facts:
    """Derive what the checks read from a history, in one pass over its calls."""
    calls = _calls(events)
    grants = _grants(calls)
    by_item: dict[int, list[Grant]] = defaultdict(list)
    for g in grants:
        by_item[g.item_id].append(g)

    # Outcomes of fenced ops, keyed by (item, token).
    end_invoke: dict[LeaseKey, int] = {}
    hb_until: dict[LeaseKey, int] = {}
    first_invoke: dict[tuple[str, int, int | None], int] = {}
    completions: dict[int, set[tuple[int | None, str | None]]] = defaultdict(set)
    completed_at: dict[int, int] = {}
    dead: set[int] = set()
    counts: Counter[str] = Counter()
    seen_items: set[int] = set()
    enqueued: set[int] = set()
    enqueue_unknown = 0
    ended_kinds: list[tuple[str, LeaseKey]] = []
    for call in calls.values():
        kind = (
            str((call.invoke or call.outcomes[0])["kind"]) if call.invoke or call.outcomes else ""
        )
        if kind == "ended" and call.invoke is None:
            counts["lease_ends"] += 1  # a fact read from the store, not a call
            continue
        counts["ops"] += 1
        counts[f"{kind}:{call.phase}"] += 1
        if kind == "enqueue":
            if call.phase == "ok":
                enqueued.update(int(o["item_id"]) for o in call.outcomes if o.get("item_id"))
            elif call.phase == "info":
                enqueue_unknown += 1
            continue
        if kind not in FENCED_KINDS or call.invoke is None:
            continue
        item, token = call.invoke.get("item_id"), call.invoke.get("token")
        if item is None:
            continue
        key = (int(item), token)
        seen_items.add(key[0])
        t_inv = call.t_invoke
        fk = (kind, key[0], token)
        first_invoke[fk] = min(first_invoke.get(fk, t_inv), t_inv)
        if call.phase != "ok":
            continue
        if kind == "heartbeat":
            extend = call.invoke.get("lease_seconds")
            if extend is None:
                continue  # the lease's own length: judged from the grant, conservatively
            until = t_inv + round(float(extend) * 1e9)
            hb_until[key] = max(hb_until.get(key, until), until)
        else:
            ended_kinds.append((kind, key))
        if kind == "complete":
            completions[key[0]].add((token, call.invoke.get("worker")))
            t_done = int(call.outcomes[0]["t_mono_ns"])
            completed_at[key[0]] = min(completed_at.get(key[0], t_done), t_done)
        if kind == "fail" and any(o.get("status") == "dead" for o in call.outcomes):
            dead.add(key[0])
    # The lease ended no later than the first try of the call that ended it: an ok repeat of an
    # earlier try whose reply was lost returns that try's outcome.
    for kind, key in ended_kinds:
        t_end = first_invoke[(kind, key[0], key[1])]
        end_invoke[key] = min(end_invoke.get(key, t_end), t_end)
    counts["grants"] = len(grants)
    counts["items_enqueued"] = len(enqueued)
    counts["items_granted"] = len(by_item)
    touched = set(by_item) | seen_items
    if enqueue_unknown:  # items of enqueues with unknown outcome: recovered, not unexpected
        counts["items_recovered"] = len(touched - enqueued)
    return Facts(
        calls=calls,
        grants=grants,
        by_item=by_item,
        first_invoke=first_invoke,
        end_invoke=end_invoke,
        hb_until=hb_until,
        completions=completions,
        completed_at=completed_at,
        dead=dead,
        enqueued=enqueued,
        enqueue_unknown=enqueue_unknown,
        touched=touched,
        grant_order=_grant_order(by_item),
        counts=counts,
        final_state=final_state,
        clock_slack_ns=clock_slack_ns,
        flow=derive_flow(
            {op_id: c.invoke for op_id, c in calls.items() if c.invoke is not None},
            {op_id: c.outcomes for op_id, c in calls.items()},
            store_slack_us,
        ),
    )


# -- the invariants ------------------------------------------------------------------------------


@dataclass(slots=True)
class Found:
    """What one invariant's check found: how many violations, and the first few examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str, n: int = 1) -> None:
        self.count += n
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


Check = Callable[[Facts, Found], bool]
"""One invariant's check: adds each violation to `Found`; returns whether the history held
the data to judge it (False shows as "not checked: no data")."""

CHECKS: dict[str, Check] = {}


def invariant(name: str) -> Callable[[Check], Check]:
    """Register the decorated function as the check of invariant `name` (in `INVARIANTS`)."""
    if name not in INVARIANTS:
        raise ValueError(f"{name!r} is not in INVARIANTS")

    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


@invariant("lease_overlap")
def lease_overlap(facts: Facts, found: Found) -> bool:
    """Per item, a sweep over the sure-held windows sorted by start: a grant returned while
    another lease of the item was surely held."""
    for item, item_grants in facts.by_item.items():
        windows = []
        for g in item_grants:
            key = (item, g.token)
            held = g.t_invoke + g.lease_ns if g.lease_ns is not None else None
            if key in facts.hb_until and held is not None:
                held = max(held, facts.hb_until[key])
            ended = facts.end_invoke.get(key)
            end = ended if held is None else (held if ended is None else min(held, ended))
            if end is None:
                end = FOREVER
            end -= facts.clock_slack_ns
            if end > g.t_ok:
                windows.append((g.t_ok, end, g))
        windows.sort(key=lambda w: w[0])
        max_end, holder = -1, None
        for start, end, g in windows:
            if holder is not None and start < max_end:
                found.add(
                    f"item {item}: token {g.token} ({g.op_id}) granted while token "
                    f"{holder.token} ({holder.op_id}) was surely held",
                )
            if end > max_end:
                max_end, holder = end, g
    return bool(facts.grants)


@invariant("token_reused")
def token_reused(facts: Facts, found: Found) -> bool:
    """No (item, token) pair handed out twice."""
    pairs = Counter((g.item_id, g.token) for g in facts.grants if g.token is not None)
    for (item, token), n in pairs.items():
        if n > 1:
            found.add(f"item {item} token {token} handed out {n} times", n - 1)
    return True


@invariant("token_order")
def token_order(facts: Facts, found: Found) -> bool:
    """Tokens strictly increase over grants that surely happened in order (one returned before
    the other was invoked)."""
    for item, item_grants in facts.by_item.items():
        times, prefix_max = facts.grant_order[item]
        for g in item_grants:
            if g.token is None:
                continue
            i = bisect.bisect_left(times, g.t_invoke)
            if i and prefix_max[i - 1] >= int(g.token or 0):
                found.add(
                    f"item {item}: token {g.token} ({g.op_id}) after a grant of token "
                    f"{prefix_max[i - 1]}",
                )
    return bool(facts.grants)


@invariant("stale_accepted")
def stale_accepted(facts: Facts, found: Found) -> bool:
    """A fenced op accepted although a newer grant surely existed before it was first tried."""
    for call in facts.calls.values():
        if call.invoke is None or call.phase != "ok":
            continue
        kind = call.invoke["kind"]
        if kind not in FENCED_KINDS or call.invoke.get("item_id") is None:
            continue
        item, token = int(call.invoke["item_id"]), call.invoke.get("token")
        if token is None or item not in facts.grant_order:
            continue
        times, prefix_max = facts.grant_order[item]
        i = bisect.bisect_left(times, facts.first_invoke[(kind, item, token)])
        if i and prefix_max[i - 1] > int(token):
            found.add(
                f"item {item}: {kind} with token {token} ({call.invoke['op_id']}) accepted "
                f"after token {prefix_max[i - 1]} was granted",
            )
    return True


@invariant("double_completion")
def double_completion(facts: Facts, found: Found) -> bool:
    """At most one accepted completion per item (a repeat of the same lease's is one)."""
    for item, leases in facts.completions.items():
        if len(leases) > 1:
            found.add(
                f"item {item} completed under leases (token, worker) {sorted(leases, key=str)}",
                len(leases) - 1,
            )
    return True


@invariant("redelivery_after_complete")
def redelivery_after_complete(facts: Facts, found: Found) -> bool:
    """No claim invoked after a completion returned hands the item out again."""
    for g in facts.grants:
        done_at = facts.completed_at.get(g.item_id)
        if done_at is not None and g.t_invoke > done_at:
            found.add(
                f"item {g.item_id} granted again (token {g.token}, {g.op_id}) after completion",
            )
    return True


@invariant("unexpected_item")
def unexpected_item(facts: Facts, found: Found) -> bool:
    """Every item touched was enqueued; not judged when an enqueue's outcome is unknown (its
    items count as recovered) or the history shows no enqueues."""
    if not facts.has_enqueues or facts.enqueue_unknown:
        return False
    for item in sorted(facts.touched - facts.enqueued):
        found.add(f"item {item} was never enqueued")
    return True


@invariant("lost_item")
def lost_item(facts: Facts, found: Found) -> bool:
    """Nothing lost: every enqueued item is done or dead at the end (by the final state when
    given, else by an accepted completion or a fail that made it dead)."""
    for item in sorted(facts.enqueued):
        if facts.final_state is not None:
            status = facts.final_state.get(item)
            if status not in ("done", "dead"):
                found.add(f"item {item} ended {status or 'missing'}")
        elif item not in facts.completions and item not in facts.dead:
            found.add(f"item {item} has no accepted completion")
    return bool(facts.enqueued)


@invariant("concurrency_exceeded")
def concurrency_exceeded(facts: Facts, found: Found) -> bool:
    """At no claim's store time more live leases in its queue than `concurrency` (flow.py)."""
    return check_concurrency(facts.flow, found.add, per_group=False)


@invariant("group_concurrency_exceeded")
def group_concurrency_exceeded(facts: Facts, found: Found) -> bool:
    """At no claim's store time more live leases in its group than `group_concurrency`."""
    return check_concurrency(facts.flow, found.add, per_group=True)


@invariant("rate_exceeded")
def rate_exceeded(facts: Facts, found: Found) -> bool:
    """No window of `rate`'s `per_seconds` holds more than its count of the queue's claims."""
    return check_rate(facts.flow, found.add, per_group=False)


@invariant("group_rate_exceeded")
def group_rate_exceeded(facts: Facts, found: Found) -> bool:
    """No window of `group_rate`'s `per_seconds` holds more than its count of a group's claims."""
    return check_rate(facts.flow, found.add, per_group=True)


@invariant("claimed_while_paused")
def claimed_while_paused(facts: Facts, found: Found) -> bool:
    """No claim invoked after a pause returned, with no resume in between, took an item."""
    return check_paused(facts.flow, found.add)


# -- the checker ---------------------------------------------------------------------------------


def check(
    events: Iterable[Event],
    *,
    final_state: Mapping[int, str] | None = None,
    clock_slack_ns: int = 0,
    store_slack_us: int = STORE_SLACK_US,
) -> CheckResult:
    """Verify a history against the invariants in `INVARIANTS`.

    `final_state` maps item id -> status read from the store after the drain; without it an item
    counts as lost unless the history shows its accepted completion (or a fail that made it dead).
    `clock_slack_ns` shortens every sure-held window, for a store clock that may run fast.
    `store_slack_us`: how uncertain a recorded store-clock time is (the flow-control checks).
    """
    derived = derive_facts(
        events,
        final_state=final_state,
        clock_slack_ns=clock_slack_ns,
        store_slack_us=store_slack_us,
    )
    violations: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    checked: dict[str, bool] = {}
    for name in INVARIANTS:
        found = Found()
        checked[name] = CHECKS[name](derived, found)
        violations[name], examples[name] = found.count, found.examples
    return CheckResult(violations, dict(derived.counts), examples, checked)


def check_files(
    paths: Iterable[str | Path],
    *,
    final_state: Mapping[int, str] | None = None,
    clock_slack_ns: int = 0,
    store_slack_us: int = STORE_SLACK_US,
) -> CheckResult:
    """`check` over the events of some history files."""
    return check(
        load_history(paths),
        final_state=final_state,
        clock_slack_ns=clock_slack_ns,
        store_slack_us=store_slack_us,
    )
