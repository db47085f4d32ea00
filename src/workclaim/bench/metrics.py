"""Figures of one bench row, computed from its recorded history (the single source of truth).

An attempt is one call of the strategy's claim. Its outcome is `claimed`, `lost` (it lost a race
for a candidate), `empty` (the store said there was nothing) or `error`. Success rate counts the
attempts that claimed something over the attempts not answered "queue empty": an empty queue is
not a failure of the strategy, and mixing the two is what made the spike's optimistic figure 2 %.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from workclaim.bench.harness import RaceResult
from workclaim.bench.history import LOST_RACE, Event, load_history


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def _claim_ops(events: Sequence[Event]) -> tuple[dict[str, Event], dict[str, list[Event]]]:
    invokes: dict[str, Event] = {}
    outcomes: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e["kind"] != "claim":
            continue
        if e["phase"] == "invoke":
            invokes[e["op_id"]] = e
        else:
            outcomes[e["op_id"]].append(e)
    return invokes, outcomes


def _empty_while_work(
    empties: list[tuple[int, int]], events: Sequence[Event], first_grant: dict[int, int]
) -> int:
    """Empty answers given while some item was surely unclaimed: enqueued before the call and
    not claimed by any call invoked before the empty answer returned."""
    enqueued_at: dict[int, int] = {}
    for e in events:
        if e["kind"] == "enqueue" and e["phase"] == "ok" and e.get("item_id") is not None:
            enqueued_at[int(e["item_id"])] = int(e["t_mono_ns"])
    items = sorted(enqueued_at.items(), key=lambda kv: kv[1])
    times = [t for _, t in items]
    prefix: list[int] = []
    best = -1
    for item, _ in items:
        best = max(best, first_grant.get(item, 1 << 62))
        prefix.append(best)
    count = 0
    for t_invoke, t_done in empties:
        i = bisect.bisect_left(times, t_invoke)
        if i and prefix[i - 1] > t_done:
            count += 1
    return count


def row_metrics(race: RaceResult) -> dict[str, Any]:
    """Every figure of one (strategy, backend, scenario) row."""
    events = load_history(race.history_files)
    invokes, outcomes = _claim_ops(events)
    latencies: list[float] = []
    claims = won = lost = empty = errors = 0
    empties: list[tuple[int, int]] = []
    first_grant: dict[int, int] = {}
    granted_items: set[int] = set()
    for op_id, start in invokes.items():
        outs = outcomes.get(op_id, [])
        if not outs:
            errors += 1
            continue
        t0, t1 = int(start["t_mono_ns"]), int(outs[0]["t_mono_ns"])
        phase = outs[0]["phase"]
        if phase == "info":
            errors += 1
            continue
        latencies.append((t1 - t0) / 1e6)
        if phase == "fail" and outs[0].get("error") == LOST_RACE:
            lost += 1
            continue
        items = [int(o["item_id"]) for o in outs if o.get("item_id") is not None]
        if not items:
            empty += 1
            empties.append((t0, t1))
            continue
        claims += len(items)
        won += 1
        for item in items:
            granted_items.add(item)
            first_grant[item] = min(first_grant.get(item, t0), t0)
    latencies.sort()
    attempts = len(invokes)
    busy_ns = sum(end - start for start, end in race.run_windows)
    plan = race.config.plan
    extra_grants = claims - len(granted_items)
    duplicates = race.check.duplicates if plan.has_reclaims else max(extra_grants, 0)
    denominator = attempts - empty
    return {
        "attempts": attempts,
        "claims": claims,
        "lost_races": lost,
        "empty": empty,
        "empty_while_work": _empty_while_work(empties, events, first_grant),
        "success_rate": won / denominator if denominator > 0 else math.nan,
        "duplicates": duplicates,
        "violations": sum(race.check.violations.values()),
        "errors": errors + len(race.worker_errors),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else math.nan,
        "throughput": claims / (busy_ns / 1e9) if busy_ns > 0 else math.nan,
        "wall_seconds": busy_ns / 1e9,
        "items": race.enqueued,
        "completed": sum(1 for s in race.final_state.values() if s == "done"),
        "check": race.check.to_dict(),
    }
