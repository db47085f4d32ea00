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
from workclaim.bench.history.flow import LIMITS

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
        on_invoke: dict[str, Any] = {k: extra.pop(k) for k in ("queue", "policy") if k in extra}
        self.events.append(
            {
                **base,
                "phase": "invoke",
                "t_mono_ns": int(t_invoke * S),
                "item_id": item,
                "token": token,
                "lease_seconds": lease,
                **on_invoke,
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
                    **{k: v for k, v in fields.items() if v is not None},
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

    def flow_claim(
        self,
        item: int,
        token: int,
        t0: float,
        t1: float,
        *,
        store: float,
        group: str | None = None,
        ended: float | None = None,
        worker: str = "w1",
        lease: float = 10.0,
        queue: str = "q",
    ) -> None:
        """A claim of `queue` taken at store time `store` (seconds), its lease completed at store
        time `ended` (an `ended` fact, and an accepted complete by the client just after)."""
        fields = {
            "item_id": item,
            "token": token,
            "lease_seconds": lease,
            "expires_at_us": round((store + lease) * 1e6),
            "queue": queue,
            "group": group,
        }
        self.op("claim", t0, t1, worker=worker, lease=lease, results=[fields])
        if ended is not None:
            self.ended(item, token, ended)
            self.end("complete", item, token, t1 + 0.01, t1 + 0.02, worker=worker)

    def ended(self, item: int, token: int, at: float | None) -> None:
        """The `ended` fact read from the item's attempt history (None: it expired)."""
        self.n += 1
        fact: Event = {"op_id": f"store:{self.n}", "process": "store", "kind": "ended"}
        fact["phase"] = "ok"
        fact |= {"t_mono_ns": 10**6 * S, "item_id": item, "token": token}
        if at is not None:
            fact["ended_at_us"] = round(at * 1e6)
        self.events.append(fact)

    def policy(
        self, t0: float, t1: float, phase: str = "ok", queue: str = "q", **limits: Any
    ) -> None:
        """A set_policy call: `limits` as keywords (rate=(count, per))."""
        full: dict[str, Any] = {name: limits.get(name) for name in LIMITS}
        for name in ("rate", "group_rate"):
            if limits.get(name) is not None:
                full[name] = list(limits[name])
        self.op("policy", t0, t1, phase, worker="admin", queue=queue, policy=full)

    def flip(
        self, kind: str, t0: float, t1: float, phase: str = "ok", queue: str = "q", **extra: Any
    ) -> None:
        """A pause or resume call."""
        self.op(kind, t0, t1, phase, worker="admin", queue=queue, **extra)

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
    # Flow control on queue q: every limit met exactly, a pause with one claim refused, resumed.
    h.policy(3.5, 3.6, concurrency=2, group_concurrency=1, rate=(3, 1.0), group_rate=(2, 1.0))
    h.enqueue(3, 4, 5, 6, t=3.7)
    h.flow_claim(3, 20, 4.0, 4.1, store=100.0, group="a", ended=100.5)
    h.flow_claim(4, 21, 4.2, 4.3, store=100.2, group="b", ended=100.6)  # 2 live, the limit
    h.flow_claim(5, 22, 4.4, 4.5, store=100.5, group="a", ended=100.8)  # 3 claims in 1 s
    h.flip("pause", 5.0, 5.1)
    h.op("claim", 5.2, 5.3, worker="w2", lease=10)  # paused: nothing
    h.flip("resume", 5.5, 5.6)
    h.flow_claim(6, 23, 5.7, 5.8, store=102.0, group="b", ended=102.1)
    return h


FINAL = {i: "done" for i in range(1, 7)}


def test_a_clean_history_passes() -> None:
    result = check(clean_history().events, final_state=FINAL)
    assert result.ok, result.summary()
    assert result.counts["grants"] == 7
    assert result.counts["lease_ends"] == 4
    assert all(result.checked.values()), result.checked


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
    h.flip("pause", 6.0, 7.0, "info", error="timeout")  # may not have happened
    h.enqueue(7, t=7.0)
    h.flow_claim(7, 30, 7.5, 7.6, store=110.0, ended=110.1)
    assert check(h.events, final_state=FINAL | {7: "done"}).ok


# -- flow control: limits judged on the store's clock ---------------------------------------------


@breaks("concurrency_exceeded")
def two_live_leases_under_concurrency_one() -> H:
    h = H()
    h.policy(0.5, 0.6, concurrency=1)
    h.enqueue(1, 2)
    h.flow_claim(1, 10, 1.0, 1.1, store=100.0, group="a", ended=101.0)
    h.flow_claim(2, 11, 1.2, 1.3, store=100.5, group="b", ended=100.9, worker="w2")
    return h


@breaks("group_concurrency_exceeded")
def two_live_leases_of_one_group_under_group_concurrency_one() -> H:
    h = H()
    h.policy(0.5, 0.6, group_concurrency=1)
    h.enqueue(1, 2, 3)
    h.flow_claim(1, 10, 1.0, 1.1, store=100.0, group="a", ended=101.0)
    h.flow_claim(3, 12, 1.0, 1.1, store=100.1, group="b", ended=101.0, worker="w3")
    h.flow_claim(2, 11, 1.2, 1.3, store=100.5, group="a", ended=100.9, worker="w2")
    return h


@breaks("rate_exceeded")
def three_claims_in_a_second_under_two_per_second() -> H:
    h = H()
    h.policy(0.5, 0.6, rate=(2, 1.0))
    h.enqueue(1, 2, 3)
    for i, store in enumerate((100.0, 100.3, 100.6)):
        h.flow_claim(1 + i, 10 + i, 1.0 + i, 1.1 + i, store=store, group=f"g{i}", ended=store + 0.1)
    return h


@breaks("group_rate_exceeded")
def three_claims_of_a_group_in_a_second_under_two_per_second() -> H:
    h = H()
    h.policy(0.5, 0.6, group_rate=(2, 1.0))
    h.enqueue(1, 2, 3, 4)
    h.flow_claim(4, 20, 0.8, 0.9, store=99.9, group="b", ended=99.95)
    for i, store in enumerate((100.0, 100.3, 100.6)):
        h.flow_claim(1 + i, 10 + i, 1.0 + i, 1.1 + i, store=store, group="a", ended=store + 0.1)
    return h


@breaks("claimed_while_paused")
def a_claim_after_the_pause_returned() -> H:
    h = H()
    h.enqueue(1)
    h.flip("pause", 1.0, 1.1)
    h.flow_claim(1, 10, 2.0, 2.1, store=100.0, ended=100.1)
    return h


def test_a_batch_counts_all_its_own_leases() -> None:
    """One claim taking two items under concurrency 1 is caught, on the claim."""
    h = H()
    h.policy(0.5, 0.6, concurrency=1)
    h.enqueue(1, 2)
    fields = [
        {"item_id": i, "token": 10 + i, "lease_seconds": 10.0, "expires_at_us": 110_000_000}
        | {"queue": "q"}
        for i in (1, 2)
    ]
    h.op("claim", 1.0, 1.1, lease=10.0, results=fields)
    for i in (1, 2):
        h.ended(i, 10 + i, 100.5)
        h.end("complete", i, 10 + i, 1.2, 1.3)
    assert violated(h) == {"concurrency_exceeded": 1}


def test_a_lease_ended_at_the_instant_of_the_next_claim_frees_its_slot() -> None:
    """complete_and_claim: the completion and the claim share one store time."""
    h = H()
    h.policy(0.5, 0.6, concurrency=1, group_concurrency=1)
    h.enqueue(1, 2)
    h.flow_claim(1, 10, 1.0, 1.1, store=100.0, group="a", ended=100.5)
    h.flow_claim(2, 11, 1.2, 1.3, store=100.5, group="a", ended=100.9)
    assert violated(h) == {}


def test_an_expired_lease_holds_no_slot_and_a_heartbeat_extends_it() -> None:
    h = H()
    h.policy(0.5, 0.6, concurrency=1)
    h.enqueue(1, 2, 3)
    h.flow_claim(1, 10, 1.0, 1.1, store=100.0, lease=1.0)  # expires at 101, never ended
    h.ended(1, 10, None)
    h.flow_claim(1, 11, 2.2, 2.3, store=101.0, ended=101.5, worker="w2")  # at its expiry: free
    h.flow_claim(2, 12, 3.0, 3.1, store=102.0, lease=1.0)
    h.end("heartbeat", 2, 12, 3.2, 3.3, lease=5.0, expires_at_us=108_000_000)
    h.ended(2, 12, None)  # it expired, at 108 by the heartbeat
    h.flow_claim(3, 13, 4.0, 4.1, store=104.0, ended=104.5, worker="w2")
    h.end("complete", 2, 12, 9.0, 9.1)  # a late complete, accepted: the item was not reclaimed
    assert violated(h) == {"concurrency_exceeded": 1}


def test_a_lease_with_no_known_end_never_counts_against_another_claim() -> None:
    """Without its store-clock end, a completed lease may have ended at once: no alarm."""
    h = H()
    h.policy(0.5, 0.6, concurrency=1)
    h.enqueue(1, 2)
    h.flow_claim(1, 10, 1.0, 1.1, store=100.0)
    h.end("complete", 1, 10, 1.2, 1.3)
    h.flow_claim(2, 11, 1.4, 1.5, store=100.5, ended=100.9)
    assert violated(h) == {}


def test_a_lowered_limit_lets_leases_run_on_but_blocks_new_ones() -> None:
    h = H()
    h.policy(0.5, 0.6, concurrency=2)
    h.enqueue(1, 2, 3)
    h.flow_claim(1, 10, 1.0, 1.1, store=100.0, ended=105.0)
    h.flow_claim(2, 11, 1.2, 1.3, store=100.2, ended=105.0)
    h.policy(2.0, 2.1, concurrency=1)  # two run on over the new limit: fine
    assert violated(h, final_state={1: "done", 2: "done", 3: "done"}) == {}
    h.flow_claim(3, 12, 3.0, 3.1, store=103.0, ended=103.5)  # a third while two live: caught
    assert violated(h) == {"concurrency_exceeded": 1}


def test_a_claim_concurrent_with_a_policy_change_is_judged_by_the_looser_policy() -> None:
    h = H()
    h.policy(0.5, 0.6, concurrency=2)
    h.enqueue(1, 2)
    h.flow_claim(1, 10, 1.0, 1.1, store=100.0, ended=105.0)
    h.policy(1.5, 2.5, concurrency=1)
    h.flow_claim(2, 11, 2.0, 2.2, store=101.0, ended=101.5)  # overlaps the change
    assert violated(h) == {}


def test_no_policy_before_the_first_one_returned() -> None:
    """A claim made before any policy call returned may have run unlimited."""
    h = H()
    h.enqueue(1, 2)
    h.flow_claim(1, 10, 1.0, 1.1, store=100.0, ended=105.0)
    h.flow_claim(2, 11, 1.2, 1.3, store=100.2, ended=105.0)
    h.policy(1.25, 1.4, concurrency=1)
    assert violated(h) == {}


def test_rate_windows_are_judged_within_the_store_slack() -> None:
    """Three claims spanning just under the window by less than the slack: not judged; well
    under it: caught. Each claim counts once per item, at its store time."""

    def history(span: float) -> H:
        h = H()
        h.policy(0.5, 0.6, rate=(2, 1.0))
        h.enqueue(1, 2, 3)
        for i, store in enumerate((100.0, 100.0 + span / 2, 100.0 + span)):
            h.flow_claim(1 + i, 10 + i, 1.0 + i, 1.1 + i, store=store, ended=store + 0.01)
        return h

    assert violated(history(1.0)) == {}  # (t - 1 s, t]: the first claim has left the window
    assert violated(history(0.9995)) == {}  # within the default slack of 1 ms
    assert violated(history(0.9995), store_slack_us=0) == {"rate_exceeded": 1}
    assert violated(history(0.99)) == {"rate_exceeded": 1}


def test_pause_is_judged_from_the_calls_that_surely_came_first() -> None:
    h = H()
    h.enqueue(1, 2, 3)
    h.flow_claim(1, 10, 0.9, 1.05, store=100.0, ended=100.1)  # overlaps the pause: allowed
    h.flip("pause", 1.0, 1.1)
    h.flip("resume", 1.9, 2.3)
    h.flow_claim(2, 11, 2.0, 2.1, store=101.0, ended=101.1)  # overlaps the resume: allowed
    h.flip("pause", 3.0, 3.1)
    h.flip("resume", 3.5, 9.0, "info", error="timeout")  # may have taken effect at once
    h.flow_claim(3, 12, 4.0, 4.1, store=102.0, ended=102.1)
    assert violated(h) == {}
    # A resume of unknown outcome may take effect any time later (a request stuck on its way):
    # on queue q no pause is relied on any more; another queue's pause still is.
    h.flip("pause", 10.0, 10.1, queue="q2")
    h.enqueue(4, t=10.2)
    h.flow_claim(4, 13, 11.0, 11.1, store=110.0, ended=110.1, queue="q2")
    assert violated(h) == {"claimed_while_paused": 1}


def test_limits_are_per_queue_and_per_group() -> None:
    h = H()
    h.policy(0.5, 0.6, concurrency=1, group_concurrency=1)
    h.enqueue(1, 2, 3)
    h.flow_claim(1, 10, 1.0, 1.1, store=100.0, group="a", ended=105.0)
    h.flow_claim(2, 11, 1.2, 1.3, store=100.2, group="a", ended=105.0, queue="other")
    h.flip("pause", 1.4, 1.5, queue="other")
    h.flow_claim(3, 12, 2.0, 2.1, store=101.0, group="a", ended=101.5, queue="third")
    assert violated(h) == {}


def test_lease_end_facts_come_from_the_attempt_history() -> None:
    from datetime import UTC, datetime

    from workclaim.bench.history import lease_end_facts
    from workclaim.models import EventKind, HistoryEvent, Status

    def at(s: float) -> datetime:
        return datetime.fromtimestamp(s, UTC)

    events = [
        HistoryEvent(1, EventKind.CLAIMED, at(100.0), 1, Status.CLAIMED, token=10),
        HistoryEvent(1, EventKind.HEARTBEAT, at(100.5), 1, Status.CLAIMED, token=10),
        HistoryEvent(1, EventKind.EXPIRED, at(102.0), 1, Status.QUEUED, token=10),
        HistoryEvent(1, EventKind.CLAIMED, at(103.0), 2, Status.CLAIMED, token=11),
        HistoryEvent(1, EventKind.RELEASED, at(103.5), 2, Status.QUEUED, token=11),
        HistoryEvent(1, EventKind.CLAIMED, at(104.0), 3, Status.CLAIMED, token=12),
        HistoryEvent(1, EventKind.COMPLETED, at(104.25), 3, Status.DONE, token=12),
        HistoryEvent(1, EventKind.CLAIMED, at(105.0), 4, Status.CLAIMED, token=13),
    ]
    assert lease_end_facts(1, events) == [
        {"item_id": 1, "token": 10, "ended_at_us": 102_000_000},  # reaped: capped at expiry
        {"item_id": 1, "token": 11, "ended_at_us": 103_500_000},
        {"item_id": 1, "token": 12, "ended_at_us": 104_250_000},
        {"item_id": 1, "token": 13, "ended_at_us": None},  # still held, or expired unreaped
    ]


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
