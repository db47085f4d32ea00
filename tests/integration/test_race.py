"""The real race: spawned worker processes, each with its own connection, released by a barrier,
claim (single and batched) over thousands of items while some stall past their lease; the
recorded history must pass every invariant of the checker. Then the checker must catch `naive`.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest

from workclaim.bench.harness import RaceConfig, RaceResult, WorkPlan, run_race
from workclaim.bench.history import load_history
from workclaim.bench.strategies import Target

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# (worker processes, items) per backend: SQLite is one file on one host; the servers take more.
SIZES = {"sqlite": (8, 2_000)}
SERVER_SIZE = (16, 5_000)

# Workers 0 and 1 hold every 25th claim past a 0.3 s lease until another worker has the item,
# then try to heartbeat and complete it (both must be refused). Everyone alternates single and
# batched claims, heartbeats every 7th lease and releases every 13th.
STALLING = WorkPlan(
    batches=(1, 5),
    lease=10.0,
    drain=True,
    stall_workers=2,
    stall_every=25,
    stall_lease=0.3,
    heartbeat_every=7,
    release_every=13,
)


def _race(target: Target, workers: int, items: int, plan: WorkPlan, tmp_path: Path) -> RaceResult:
    return run_race(RaceConfig(target, workers, items, 1, plan), tmp_path / "history")


def _diagnose(result: RaceResult) -> str:
    return result.check.summary() + "\n" + "\n".join(result.worker_errors)


def test_no_duplicates_under_a_real_race(backend_name: str, store_url: str, tmp_path: Path) -> None:
    workers, items = SIZES.get(backend_name, SERVER_SIZE)
    target = Target("skip-locked", backend_name, store_url, f"race-{uuid.uuid4().hex[:8]}")

    result = _race(target, workers, items, STALLING, tmp_path)

    assert result.worker_errors == [], _diagnose(result)
    assert result.check.ok, _diagnose(result)
    assert result.enqueued == items
    assert sorted(Counter(result.final_state.values()).items()) == [("done", items)]
    counts = result.check.counts
    assert counts["complete:ok"] == items  # every item completed exactly once
    assert counts.get("complete:fail", 0) >= 2  # the stalled holders' completions were refused
    assert counts.get("heartbeat:fail", 0) >= 2
    assert counts.get("release:ok", 0) > 0 and counts.get("heartbeat:ok", 0) > 0
    assert counts["grants"] > items  # stalled and released items were granted again
    events = load_history(result.history_files)
    per_claim = Counter(
        e["op_id"] for e in events if e["kind"] == "claim" and e["phase"] == "ok" and "item_id" in e
    )
    assert max(per_claim.values()) > 1  # batched claims happened
    processes = {e["process"] for e in events if e["kind"] == "claim"}
    assert len(processes) == workers


def test_the_checker_catches_the_naive_claim(tmp_path: Path) -> None:
    """Read a candidate, then update it with no guard: duplicates, and the checker says so."""
    target = Target("naive", "sqlite", f"sqlite:///{tmp_path / 'naive.db'}", "naive")

    result = _race(target, 8, 2_000, WorkPlan(), tmp_path)

    assert result.worker_errors == []
    assert not result.check.ok
    violations = result.check.violations
    assert violations["token_reused"] > 0, json.dumps(result.check.to_dict(), indent=1)
    assert result.check.duplicates > 0
    assert result.check.counts["grants"] > 2_000
