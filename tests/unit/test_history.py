"""The history checker: each invariant catches a history built to break it (and only it), and
clean or merely delayed histories pass."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workclaim.bench.history import INVARIANTS, Event, Recorder, check, load_history, main
from workclaim.bench.history.checking import CHECKS, Found, derive_facts

S = 1_000_000_000  # one second in ns


class H:
    """A history written by hand: times in seconds, one op per call."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.n = 0

    def op(
        self,
        kind: str,
        t_invoke: float,
        t_done: float,
        phase: str = "ok",
        *,
        item: int | None = None,
        token: int | None = None,
        worker: str = "w1",
        lease: float | None = None,
        results: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        self.n += 1
        op_id = f"{worker}:{self.n}"
        base = {"op_id": op_id, "process": worker, "kind": kind, "worker": worker}
        self.events.append(
            {
                **base,
                "phase": "invoke",
                "t_mono_ns": int(t_invoke * S),
                "item_id": item,
                "token": token,
                "lease_seconds": lease,
            }
        )
        for fields in results or [{}]:
            self.events.append(
                {
                    **base,
                    "phase": phase,
                    "t_mono_ns": int(t_done * S),
                    "item_id": fields.get("item_id", item),
                    "token": fields.get("token", token),
                    "lease_seconds": fields.get("lease_seconds", lease),
                    **extra,
                }
            )
        return op_id

    def enqueue(self, *items: int, t: float = 0.0) -> None:
        self.op("enqueue", t, t + 0.01, results=[{"item_id": i} for i in items])

    def claim(
        self, item: int, token: int, t0: float, t1: float, *, worker: str = "w1", lease: float = 1
    ) -> None:
        self.op(
            "claim",
            t0,
            t1,
            worker=worker,
            lease=lease,
            results=[{"item_id": item, "token": token, "lease_seconds": lease}],
        )

    def end(
        self,
        kind: str,
        item: int,
        token: int,
        t0: float,
        t1: float,
        phase: str = "ok",
        *,
        worker: str = "w1",
        **extra: Any,
    ) -> None:
        self.op(kind, t0, t1, phase, item=item, token=token, worker=worker, **extra)


def violated(h: H, **kwargs: Any) -> dict[str, int]:
    result = check(h.events, **kwargs)
    return {k: v for k, v in result.violations.items() if v}


# invariant name -> a function building a history that breaks that invariant and no other
BROKEN: dict[str, Callable[[], H]] = {}


def breaks(name: str) -> Callable[[Callable[[], H]], Callable[[], H]]:
    """Register the decorated function as the history that breaks invariant `name` alone;
    `test_each_invariant_is_reported_for_its_broken_history_alone` runs the checker on it."""

    def register(build: Callable[[], H]) -> Callable[[], H]:
        BROKEN[name] = build
        return build

    return register


def clean_history() -> H:
    """Two items; the second's first holder stalls past its lease and is refused."""
    h = H()
    h.enqueue(1, 2)
    h.claim(1, 10, 1.0, 1.1)
    h.end("complete", 1, 10, 1.2, 1.3)
    h.claim(2, 11, 1.0, 1.2, worker="w2", lease=0.5)
    h.claim(2, 12, 1.6, 1.7, worker="w3")
    h.end("heartbeat", 2, 12, 1.8, 1.81, worker="w3", lease=5.0)
    h.end("complete", 2, 11, 2.0, 2.1, "fail", worker="w2", error="LeaseLost")
    h.end("complete", 2, 12, 2.2, 2.3, worker="w3")
    h.op("claim", 3.0, 3.1, worker="w1", lease=1)  # queue empty: ok, no item
    return h


def test_a_clean_history_passes() -> None:
    result = check(clean_history().events, final_state={1: "done", 2: "done"})
    assert result.ok, result.summary()
    assert result.counts["grants"] == 3
    assert all(result.checked.values())


@breaks("lease_overlap")
def overlapping_leases() -> H:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=1.0)  # surely held until 2.0
    h.claim(1, 11, 1.4, 1.5, worker="w2")
    h.end("complete", 1, 11, 1.6, 1.7, worker="w2")
    return h


def test_a_delayed_client_raises_no_false_alarm() -> None:
    """The old holder's claim returned late and its lease ran out before the new grant."""
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.9, lease=1.0)  # reply delayed by 0.9 s: surely held only [1.9, 2.0)
    h.claim(1, 11, 2.0, 2.05, worker="w2")
    h.end("complete", 1, 10, 2.5, 2.6, "fail", error="LeaseLost")
    h.end("complete", 1, 11, 2.1, 2.2, worker="w2")
    assert violated(h) == {}


def test_a_heartbeat_extends_the_sure_held_window() -> None:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=1.0)
    h.end("heartbeat", 1, 10, 1.5, 1.6, lease=5.0)  # surely held until 6.5
    h.claim(1, 11, 3.0, 3.1, worker="w2")
    h.end("complete", 1, 11, 3.2, 3.3, worker="w2")
    assert violated(h) == {"lease_overlap": 1}


def test_an_ending_op_closes_the_window() -> None:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=30.0)
    h.end("release", 1, 10, 1.2, 1.3)
    h.claim(1, 11, 1.25, 1.4, worker="w2")
    h.end("complete", 1, 11, 1.5, 1.6, worker="w2")
    assert violated(h) == {}


@breaks("token_reused")
def a_token_handed_out_twice_at_once() -> H:
    """Two overlapping calls get the same token: no order between them, and neither lease is
    surely held past its call's end."""
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.3, lease=0.1)
    h.claim(1, 10, 1.1, 1.2, worker="w2", lease=0.1)
    h.end("complete", 1, 10, 2.0, 2.1, worker="w2")
    return h


@breaks("token_order")
def a_later_grant_with_a_lower_token() -> H:
    """Token 9 granted after token 10; only the holder of a newer token 11 completes."""
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=0.1)
    h.claim(1, 9, 5.0, 5.1, worker="w2", lease=0.1)
    h.end("release", 1, 10, 5.2, 5.3, "fail", error="LeaseLost")
    h.claim(1, 11, 6.0, 6.1, worker="w2", lease=0.1)
    h.end("complete", 1, 11, 6.2, 6.3, worker="w2")
    return h


def test_a_token_handed_out_twice_is_caught() -> None:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=0.1)
    h.claim(1, 10, 5.0, 5.1, worker="w2", lease=0.1)
    h.end("complete", 1, 10, 5.2, 5.3, worker="w2")
    assert violated(h) == {"token_reused": 1, "token_order": 1}


def test_a_token_going_backwards_is_caught() -> None:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=0.1)
    h.claim(1, 9, 5.0, 5.1, worker="w2", lease=0.1)
    h.end("complete", 1, 9, 5.2, 5.3, worker="w2")
    # Completing under the lower token is also a stale mutation (token 10 was granted first).
    assert violated(h) == {"token_order": 1, "stale_accepted": 1}


def test_concurrent_grants_may_come_in_any_token_order() -> None:
    """Calls that overlap in time have no sure order, so no token order is demanded."""
    h = H()
    h.enqueue(1)
    h.claim(1, 11, 1.0, 1.3, lease=0.1)
    h.claim(1, 10, 1.1, 1.2, worker="w2", lease=0.1)
    h.end("complete", 1, 11, 2.0, 2.1)
    assert violated(h) == {}


@breaks("stale_accepted")
def a_stale_completion_accepted() -> H:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=0.2)
    h.claim(1, 11, 2.0, 2.1, worker="w2")
    h.end("complete", 1, 10, 3.0, 3.1)  # token 10 accepted after token 11 was granted
    return h


def test_a_stale_heartbeat_accepted_is_caught() -> None:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=0.2)
    h.claim(1, 11, 2.0, 2.1, worker="w2")
    h.end("heartbeat", 1, 10, 3.0, 3.1, lease=1.0)
    h.end("complete", 1, 11, 3.2, 3.3, worker="w2")
    # The accepted heartbeat also makes token 10 surely held again, beside token 11.
    assert violated(h) == {"stale_accepted": 1, "lease_overlap": 1}


def test_the_repeat_of_a_call_that_ended_a_lease_is_not_stale() -> None:
    """A release whose reply was lost, retried after someone else claimed the item, is the
    idempotent repeat: it returns the original outcome."""
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=30.0)
    h.end("release", 1, 10, 1.2, 1.5, "info", error="timeout")
    h.claim(1, 11, 1.6, 1.7, worker="w2")
    h.end("release", 1, 10, 2.0, 2.1)
    h.end("complete", 1, 11, 2.2, 2.3, worker="w2")
    assert violated(h) == {}


@breaks("double_completion")
def two_accepted_completions() -> H:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=0.1)
    h.end("complete", 1, 10, 1.15, 1.16)
    h.claim(1, 11, 1.12, 1.3, worker="w2", lease=0.1)
    h.end("complete", 1, 11, 1.4, 1.5, worker="w2")
    return h


@breaks("redelivery_after_complete")
def a_redelivery_after_completion() -> H:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1, lease=0.1)
    h.end("complete", 1, 10, 1.15, 1.16)
    h.claim(1, 11, 2.0, 2.1, worker="w2", lease=0.1)
    return h


@breaks("unexpected_item")
def an_item_never_enqueued() -> H:
    h = H()
    h.enqueue(1)
    h.claim(1, 10, 1.0, 1.1)
    h.end("complete", 1, 10, 1.2, 1.3)
    h.claim(99, 11, 2.0, 2.1)
    h.end("complete", 99, 11, 2.2, 2.3)
    return h


def test_an_item_from_an_enqueue_of_unknown_outcome_is_recovered_not_unexpected() -> None:
    h = H()
    h.enqueue(1)
    h.op("enqueue", 0.5, 0.9, "info", error="timeout")
    h.claim(1, 10, 1.0, 1.1)
    h.end("complete", 1, 10, 1.2, 1.3)
    h.claim(2, 11, 2.0, 2.1)
    h.end("complete", 2, 11, 2.2, 2.3)
    result = check(h.events)
    assert result.ok
    assert result.counts["items_recovered"] == 1


@breaks("lost_item")
def a_lost_item() -> H:
    """Two items enqueued, one completed, nothing more."""
    h = H()
    h.enqueue(1, 2)
    h.claim(1, 10, 1.0, 1.1)
    h.end("complete", 1, 10, 1.2, 1.3)
    return h


def test_a_lost_item_is_caught_from_the_history_and_from_the_final_state() -> None:
    h = a_lost_item()
    assert violated(h) == {"lost_item": 1}
    assert violated(h, final_state={1: "done", 2: "queued"}) == {"lost_item": 1}
    assert violated(h, final_state={1: "done", 2: "dead"}) == {}


def test_indeterminate_outcomes_are_never_violations() -> None:
    h = clean_history()
    h.op("claim", 4.0, 9.0, "info", worker="w4", lease=1, error="connection reset")
    h.end("complete", 1, 10, 4.0, 4.5, "info", error="timeout")
    assert check(h.events, final_state={1: "done", 2: "done"}).ok


@pytest.mark.parametrize("name", sorted(set(INVARIANTS) | set(BROKEN)))
def test_each_invariant_is_reported_for_its_broken_history_alone(name: str) -> None:
    """Every invariant the checker knows has a history that breaks it, and the checker reports
    exactly that violation for it (an invariant it never reports would pass any run)."""
    assert name in INVARIANTS, f"{name!r} is not an invariant of the checker"
    assert name in BROKEN, f"no history breaks the invariant {name!r}: add one with @breaks"
    assert violated(BROKEN[name]()) == {name: 1}


def test_the_recorder_round_trips_through_files_and_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup, worker = tmp_path / "setup.jsonl", tmp_path / "w1.jsonl"
    with Recorder(setup, "setup") as rec:
        op = rec.invoke("enqueue")
        rec.ok_many(op, [{"item_id": 1}, {"item_id": 2}])
    with Recorder(worker, "w1") as rec:
        op = rec.invoke("claim", worker="w1", lease_seconds=30.0)
        rec.ok_many(op, [{"item_id": 1, "token": 5}, {"item_id": 2, "token": 6}])
        for item, token in ((1, 5), (2, 6)):
            done = rec.invoke("complete", item_id=item, token=token, worker="w1")
            rec.ok(done)
        empty = rec.invoke("claim", worker="w1", lease_seconds=30.0)
        rec.ok(empty)
    with worker.open("a") as f:
        f.write('{"op_id": "w1:9", "pha')  # a torn last line from a killed writer
    events = load_history([setup, worker])
    assert len(events) == 12
    assert check(events).ok

    assert main([str(setup), str(worker)]) == 0
    assert "result: OK" in capsys.readouterr().out

    final = tmp_path / "final.json"
    final.write_text(json.dumps({"1": "done", "2": "claimed"}))
    assert main([str(setup), str(worker), "--final", str(final), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["violations"]["lost_item"] == 1
    assert main([str(tmp_path / "missing.jsonl")]) == 2


def test_every_invariant_has_one_registered_check() -> None:
    assert list(CHECKS) == list(INVARIANTS)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_history_is_caught_by_its_invariants_own_check(name: str) -> None:
    """The history built to break an invariant maps to one function: that check alone finds it."""
    derived = derive_facts(BROKEN[name]().events)
    for other, run in CHECKS.items():
        found = Found()
        run(derived, found)
        assert found.count == (1 if other == name else 0), other
