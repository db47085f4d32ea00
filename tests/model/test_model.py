"""A model-based test: a small pure-Python model of the contract and a real backend, side by side.

Hypothesis drives both with random enqueues (into groups), claims, heartbeats, completions (also
fused with a claim), releases, failures, cancels, requeues, policy changes, pauses, resumes and
clock moves (the clock is injected; nothing sleeps), and after every step checks that the store
agrees with the model item by item, in its stats, its policy and its live leases per group. Claims
are checked against the fair order and the limits of flow control (tests/model/flow_reference.py).

Schedules ride along (tests/model/schedule_reference.py): declared, replaced, declared again
unchanged, disabled, removed; slots offered by hand from schedules as read earlier (stale
versions, old slots, slots already taken, slots not due yet) and fired by scheduler passes at the
model's time; each offer must be accepted exactly when the reference says, its item must be the
one the reference expects (a queue item like any other from then on), and `schedules()` must
agree with the reference after every step.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from tests.contract.helpers import T0
from tests.model.flow_reference import Candidate, admitted, fair_order
from tests.model.schedule_reference import CRONS, RefSchedule, ScheduleSettings
from workclaim import (
    CatchUp,
    GroupLeases,
    InvalidState,
    Lease,
    LeaseLost,
    Queue,
    QueuePolicy,
    Rate,
    Schedule,
    ScheduleNotFound,
    Settings,
    Status,
)
from workclaim.retry import Backoff
from workclaim.scheduler import Scheduler
from workclaim.schedules import CATCH_UP_BOUND, slot_key

BACKOFF = Backoff(base=10.0, factor=2.0, cap=1_000.0, jitter=0.0)
LIVE = (Status.QUEUED, Status.CLAIMED)
GROUPS = st.sampled_from([None, None, "a", "b", "c"])
# Rate windows keep one length through an example (a store need keep a claim's record only for
# the window in force), and a rate is set before the first claim and never lifted (a store need
# record claims only while a rate is in force): the counts change.
WINDOW = 10.0
LIMITS = st.sampled_from([None, None, 1, 2, 3])
COUNTS = st.sampled_from([1, 2, 4])
SCHEDULES = st.sampled_from(["s1", "s2"])  # names within the example's own prefix


@dataclass
class ModelItem:
    """What the contract says an item's state is."""

    id: int
    priority: int
    run_at: datetime
    max_attempts: int
    dedupe_key: str | None
    status: Status = Status.QUEUED
    attempts: int = 0
    token: int = 0
    worker: str | None = None
    expires_at: datetime | None = None
    lease: float = 0.0
    ended: tuple[int, str, Status] | None = None
    group: str | None = None


def make_machine(store_url: str) -> type[RuleBasedStateMachine]:
    """A state machine class bound to one store; each example uses a queue of its own."""

    class ContractModel(RuleBasedStateMachine):
        leases = Bundle("leases")
        schedule_reads = Bundle("schedule_reads")  # schedules as some scheduler read them

        def __init__(self) -> None:
            super().__init__()
            self.q = Queue(store_url, settings=Settings(backoff=BACKOFF, retention_seconds=0))
            self.name = f"model-{uuid.uuid4().hex[:12]}"
            self.now = T0
            self.items: dict[int, ModelItem] = {}
            self.policy = QueuePolicy(self.name)
            self.rate_on = self.group_rate_on = False
            self.claims: list[tuple[datetime, str | None]] = []  # (time, group) per item claimed
            self.served: dict[str | None, int] = {}  # group -> greatest token issued
            self.schedules: dict[str, RefSchedule] = {}

        def teardown(self) -> None:
            for name in self.schedules:  # schedulers fire every schedule of the store
                self.q.unschedule(name)
            self.q.close()

        # -- helpers ---------------------------------------------------------------------
        def current(self, lease: Lease) -> ModelItem | None:
            """The model item if `lease` is its current, unexpired lease."""
            item = self.items[lease.id]
            live = (
                item.status is Status.CLAIMED
                and item.token == lease.token
                and item.worker == lease.worker
                and item.expires_at is not None
                and item.expires_at > self.now
            )
            return item if live else None

        def is_repeat(self, lease: Lease, op: str) -> Status | None:
            ended = self.items[lease.id].ended
            if ended is not None and ended[0] == lease.token and ended[1] == op:
                return ended[2]
            return None

        def expire(self, item: ModelItem) -> None:
            """What a reap does to an item whose lease expired."""
            item.status = Status.QUEUED if item.attempts < item.max_attempts else Status.DEAD
            item.expires_at = None

        def expired(self) -> list[ModelItem]:
            return [
                i
                for i in self.items.values()
                if i.status is Status.CLAIMED and i.expires_at and i.expires_at <= self.now
            ]

        def expected_claim(self, limit: int) -> list[ModelItem]:
            """Reap, then the items a claim must take, in its order (tests/model/flow_reference)."""
            if not self.policy.paused:
                for item in self.expired():
                    self.expire(item)
            candidates = [
                Candidate(i.id, i.group, i.priority, i.run_at)
                for i in self.items.values()
                if i.status is Status.QUEUED and i.run_at <= self.now
            ]
            live = [
                i.group
                for i in self.items.values()
                if i.status is Status.CLAIMED and i.expires_at and i.expires_at > self.now
            ]
            ordered = fair_order(candidates, self.served)
            taken = admitted(ordered, self.policy, live, self.claims, self.now, limit)
            return [self.items[c.id] for c in taken]

        def granted(
            self, expected: list[ModelItem], got: list[Lease], lease: float, worker: str
        ) -> None:
            """Check a claim's leases against the model's expectation and record them."""
            assert [g.id for g in got] == [i.id for i in expected]
            for item, granted in zip(expected, got, strict=True):
                assert granted.token > item.token
                assert granted.group == item.group
                item.status, item.attempts = Status.CLAIMED, item.attempts + 1
                item.token, item.worker, item.lease = granted.token, worker, lease
                item.expires_at = self.now + timedelta(seconds=lease)
                assert granted.attempt == item.attempts
                assert granted.expires_at == item.expires_at
                self.claims.append((self.now, item.group))
                self.served[item.group] = max(self.served.get(item.group, 0), granted.token)
            if self.policy.paused:
                # Whether a claim of a paused queue reaps its expired leases is not the
                # contract's business: follow the store, which must have done it right if so.
                for item in self.expired():
                    if self.q.get(item.id).status is not Status.CLAIMED:
                        self.expire(item)

        def holder_of(self, key: str | None) -> int | None:
            for item in self.items.values():
                if key is not None and item.dedupe_key == key and item.status in LIVE:
                    return item.id
            return None

        def declare(self, name: str, wanted: ScheduleSettings) -> Schedule:
            """`schedule()` with `wanted`; the store must return what the reference stores."""
            stored = self.q.schedule(
                name,
                wanted.queue,
                wanted.cron,
                payload=wanted.payload,
                priority=wanted.priority,
                max_attempts=wanted.max_attempts,
                group=wanted.group,
                catch_up=wanted.catch_up.value,
                enabled=wanted.enabled,
                now=self.now,
            )
            current = self.schedules.get(name)
            if current is None:
                self.schedules[name] = RefSchedule(name, wanted, 1, self.now)
            else:
                self.schedules[name] = current.declared(wanted, self.now)
            assert stored == self.schedules[name].stored(self.now)
            return stored

        def slot_fired(self, read: Schedule, slot: datetime, item_id: int) -> None:
            """The store accepted `slot` offered from `read` and says its item is `item_id`:
            the live item holding the slot's dedupe key if any (enqueue's dedupe), else a new
            item, enqueued from `read`'s settings at the model's time."""
            key = slot_key(read.name, slot)
            holder = self.holder_of(key)
            self.schedules[read.name] = self.schedules[read.name].fired(slot, item_id)
            if holder is not None:
                assert item_id == holder
                return
            assert all(item_id > i for i in self.items)
            stored = self.q.get(item_id)
            assert (stored.dedupe_key, stored.payload) == (key, read.payload)
            attempts = read.max_attempts or self.q.settings.max_attempts_for(self.name)
            self.items[item_id] = ModelItem(
                item_id, read.priority, self.now, attempts, key, group=read.group
            )

        # -- rules -----------------------------------------------------------------------
        @rule(
            priority=st.integers(0, 2),
            delay=st.sampled_from([0.0, 0.0, 5.0, 30.0]),
            max_attempts=st.integers(1, 3),
            dedupe_key=st.sampled_from([None, None, "a", "b"]),
            group=GROUPS,
            count=st.sampled_from([1, 1, 2, 4]),
        )
        def enqueue(
            self,
            priority: int,
            delay: float,
            max_attempts: int,
            dedupe_key: str | None,
            group: str | None,
            count: int = 1,
        ) -> None:
            """One item (`enqueue`, with its dedupe key) or several (`enqueue_many`, without)."""
            options: dict[str, Any] = {
                "priority": priority,
                "delay": delay,
                "max_attempts": max_attempts,
                "group": group,
                "now": self.now,
            }
            if count > 1:
                item_ids = self.q.enqueue_many(
                    self.name, [{"n": n} for n in range(count)], **options
                )
                dedupe_key = None
            else:
                holder = self.holder_of(dedupe_key)
                item_ids = [
                    self.q.enqueue(self.name, {"p": priority}, dedupe_key=dedupe_key, **options)
                ]
                if holder is not None:
                    assert item_ids == [holder]
                    return
            assert len(item_ids) == count and all(item_ids[0] > i for i in self.items)
            run_at = self.now + timedelta(seconds=delay)
            for item_id in item_ids:
                self.items[item_id] = ModelItem(
                    item_id, priority, run_at, max_attempts, dedupe_key, group=group
                )

        @rule(
            target=leases,
            limit=st.integers(1, 5),
            lease=st.sampled_from([10.0, 30.0]),
            worker=st.sampled_from(["w1", "w2"]),
        )
        def claim(self, limit: int, lease: float, worker: str) -> Any:
            expected = self.expected_claim(limit)
            got = self.q.claim(
                self.name, worker=worker, lease_seconds=lease, limit=limit, now=self.now
            )
            self.granted(expected, got, lease, worker)
            return multiple(*got)

        @rule(
            target=leases,
            lease=leases,
            limit=st.integers(1, 5),
            worker=st.sampled_from(["w1", "w2"]),
        )
        def complete_and_claim(self, lease: Lease, limit: int, worker: str) -> Any:
            item = self.current(lease)
            lost = item is None and self.is_repeat(lease, "complete") is None
            if item is not None:
                item.status, item.expires_at = Status.DONE, None
                item.ended = (lease.token, "complete", Status.DONE)
            expected = self.expected_claim(limit)
            got_lost, got = self.q.complete_and_claim(
                [lease], self.name, worker=worker, lease_seconds=10.0, limit=limit, now=self.now
            )
            assert got_lost == ([lease] if lost else [])
            self.granted(expected, got, 10.0, worker)
            return multiple(*got)

        @rule(lease=leases, extend=st.sampled_from([None, 20.0]))
        def heartbeat(self, lease: Lease, extend: float | None) -> None:
            item = self.current(lease)
            if item is None:
                with pytest.raises(LeaseLost):
                    self.q.heartbeat(lease, extend=extend, now=self.now)
                return
            renewed = self.q.heartbeat(lease, extend=extend, now=self.now)
            item.expires_at = self.now + timedelta(seconds=extend or item.lease)
            assert renewed.expires_at == item.expires_at

        @rule(lease=leases)
        def complete(self, lease: Lease) -> None:
            item = self.current(lease)
            if item is None and self.is_repeat(lease, "complete") is None:
                with pytest.raises(LeaseLost):
                    self.q.complete(lease, now=self.now)
                return
            self.q.complete(lease, now=self.now)
            if item is not None:
                item.status, item.expires_at = Status.DONE, None
                item.ended = (lease.token, "complete", Status.DONE)

        @rule(lease=leases, delay=st.sampled_from([0.0, 10.0]))
        def release(self, lease: Lease, delay: float) -> None:
            item = self.current(lease)
            if item is None and self.is_repeat(lease, "release") is None:
                with pytest.raises(LeaseLost):
                    self.q.release(lease, delay=delay, now=self.now)
                return
            self.q.release(lease, delay=delay, now=self.now)
            if item is not None:
                item.status, item.expires_at = Status.QUEUED, None
                item.attempts -= 1
                item.run_at = self.now + timedelta(seconds=delay)
                item.ended = (lease.token, "release", Status.QUEUED)

        @rule(lease=leases, retry=st.booleans())
        def fail(self, lease: Lease, retry: bool) -> None:
            item = self.current(lease)
            repeat = self.is_repeat(lease, "fail")
            if item is None and repeat is None:
                with pytest.raises(LeaseLost):
                    self.q.fail(lease, "boom", retry=retry, now=self.now)
                return
            status = self.q.fail(lease, "boom", retry=retry, now=self.now)
            if item is None:
                assert status is repeat
                return
            if retry and item.attempts < item.max_attempts:
                item.status = Status.QUEUED
                item.run_at = self.now + timedelta(seconds=BACKOFF.delay(lease.attempt))
            else:
                item.status = Status.DEAD
            assert status is item.status
            item.expires_at = None
            item.ended = (lease.token, "fail", item.status)

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            if not self.items:
                return
            item = self.items[data.draw(st.sampled_from(sorted(self.items)))]
            if item.status is Status.QUEUED:
                self.q.cancel(item.id, now=self.now)
                item.status = Status.CANCELLED
            else:
                with pytest.raises(InvalidState):
                    self.q.cancel(item.id, now=self.now)

        @rule(data=st.data())
        def requeue(self, data: st.DataObject) -> None:
            if not self.items:
                return
            item = self.items[data.draw(st.sampled_from(sorted(self.items)))]
            blocked = self.holder_of(item.dedupe_key) not in (None, item.id)
            if item.status is Status.DEAD and not blocked:
                self.q.requeue(item.id, now=self.now)
                item.status, item.attempts, item.run_at = Status.QUEUED, 0, self.now
            else:
                with pytest.raises(InvalidState):
                    self.q.requeue(item.id, now=self.now)

        @initialize(
            concurrency=LIMITS,
            group_concurrency=LIMITS,
            rate=st.none() | COUNTS,
            group_rate=st.none() | COUNTS,
            groups=st.lists(GROUPS, min_size=2, max_size=8),
        )
        def first_policy_and_items(
            self,
            concurrency: int | None,
            group_concurrency: int | None,
            rate: int | None,
            group_rate: int | None,
            groups: list[str | None],
        ) -> None:
            """A policy before the first claim (rates are never set later), and a few items."""
            self.rate_on, self.group_rate_on = rate is not None, group_rate is not None
            self.set_policy(concurrency, group_concurrency, rate or 1, group_rate or 1)
            for group in groups:
                self.enqueue(priority=0, delay=0.0, max_attempts=2, dedupe_key=None, group=group)

        @rule(
            concurrency=LIMITS,
            group_concurrency=LIMITS,
            rate=COUNTS,
            group_rate=COUNTS,
            pause=st.sampled_from([None, None, False, True]),
        )
        def set_policy(
            self,
            concurrency: int | None,
            group_concurrency: int | None,
            rate: int,
            group_rate: int,
            pause: bool | None = None,
        ) -> None:
            """New limits (the rates' windows kept, see WINDOW), then maybe pause or resume."""
            expected = QueuePolicy(
                self.name,
                concurrency,
                group_concurrency,
                Rate(rate, WINDOW) if self.rate_on else None,
                Rate(group_rate, WINDOW) if self.group_rate_on else None,
                paused=self.policy.paused,
            )
            stored = self.q.set_policy(
                self.name,
                concurrency=concurrency,
                group_concurrency=group_concurrency,
                rate=(expected.rate.count, WINDOW) if expected.rate else None,
                group_rate=(expected.group_rate.count, WINDOW) if expected.group_rate else None,
            )
            assert stored == expected
            self.policy = expected
            if pause is not None:
                self.policy = replace(self.policy, paused=pause)
                verb = self.q.pause if pause else self.q.resume
                assert verb(self.name) == self.policy

        @rule(seconds=st.sampled_from([1.0, 5.0, 10.0, 11.0, 31.0, 61.0, 130.0]))
        def advance_clock(self, seconds: float) -> None:
            self.now += timedelta(seconds=seconds)

        # -- schedules ---------------------------------------------------------------------
        @rule(
            target=schedule_reads,
            which=SCHEDULES,
            cron=st.sampled_from(sorted(CRONS)),
            payload=st.sampled_from([None, {"k": 1}, [1, 2]]),
            priority=st.integers(0, 1),
            max_attempts=st.sampled_from([None, 2]),
            group=st.sampled_from([None, "a"]),
            catch_up=st.sampled_from(list(CatchUp)),
            enabled=st.sampled_from([True, True, False]),
        )
        def declare_schedule(
            self,
            which: str,
            cron: str,
            payload: Any,
            priority: int,
            max_attempts: int | None,
            group: str | None,
            catch_up: CatchUp,
            enabled: bool,
        ) -> Schedule:
            """Create or replace a schedule (replacing with the same settings is rarely drawn
            here: `redeclare_schedule` does it)."""
            wanted = ScheduleSettings(
                self.name, cron, payload, priority, max_attempts, group, catch_up, enabled
            )
            return self.declare(f"{self.name}-{which}", wanted)

        @initialize(
            target=schedule_reads,
            cron=st.sampled_from(sorted(CRONS)),
            catch_up=st.sampled_from(list(CatchUp)),
        )
        def first_schedule(self, cron: str, catch_up: CatchUp) -> Schedule:
            """A schedule from the start, so most examples fire slots."""
            wanted = ScheduleSettings(self.name, cron, None, 0, None, None, catch_up, True)
            return self.declare(f"{self.name}-s1", wanted)

        @rule(target=schedule_reads, which=SCHEDULES, flip=st.booleans())
        def redeclare_schedule(self, which: str, flip: bool) -> Any:
            """Declare a schedule again as it is (nothing changes, not even `set_at`), or with
            `enabled` flipped (disable or enable: a new version)."""
            current = self.schedules.get(f"{self.name}-{which}")
            if current is None:
                return multiple()
            wanted = current.settings
            if flip:
                wanted = replace(wanted, enabled=not wanted.enabled)
            return self.declare(current.name, wanted)

        @rule(which=SCHEDULES)
        def unschedule(self, which: str) -> None:
            name = f"{self.name}-{which}"
            assert self.q.unschedule(name) == (self.schedules.pop(name, None) is not None)

        @rule(target=schedule_reads, which=SCHEDULES)
        def read_schedule(self, which: str) -> Any:
            name = f"{self.name}-{which}"
            if name not in self.schedules:
                with pytest.raises(ScheduleNotFound):
                    self.q.get_schedule(name, now=self.now)
                return multiple()
            read = self.q.get_schedule(name, now=self.now)
            assert read == self.schedules[name].stored(self.now)
            return read

        @rule(read=schedule_reads, data=st.data())
        def offer_slot(self, read: Schedule, data: st.DataObject) -> None:
            """A scheduler offers one slot of a schedule as it read it (maybe long ago): the
            next slot by its read or by the store's state now, the one after, the last one
            taken, one before the cursor."""
            second, minute = CRONS[read.cron]
            period = timedelta(seconds=second * minute)  # about a slot's length
            marks = [read.next_slot, read.last_slot, read.set_at]
            current = self.schedules.get(read.name)
            if current is not None:
                marks += [current.next_slot(self.now), current.last_slot, current.cursor()]
                marks += [slot for slot in current.slots(current.cursor(), self.now)[:1]]
            bases = sorted({m for m in marks if m is not None})
            slot = data.draw(st.sampled_from(bases)) + data.draw(
                st.sampled_from([timedelta(0), timedelta(0), period, -period])
            )
            accepted = current is not None and current.accepts(read.version, slot)
            got = self.q.fire_slot(read, slot, now=self.now)
            assert (got is not None) == accepted, (read, slot, current)
            if got is not None:
                self.slot_fired(read, slot, got)

        @rule(
            later=st.sampled_from([0.0, 5.0, 12.0, 65.0, 130.0, 250.0]),
            bound=st.sampled_from([3, CATCH_UP_BOUND]),
        )
        def scheduler_pass(self, later: float, bound: int) -> None:
            """The clock moves `later` seconds, then one scheduler pass runs at the model's
            time (`bound`: catch-up "all"'s most slots per pass): it fires the reference's due
            slots, schedule by schedule (by name), each slot's item in turn."""
            self.now += timedelta(seconds=later)
            plan: list[tuple[Schedule, datetime]] = []  # (as read, slot), in firing order
            earliest = None
            for name in sorted(self.schedules):
                ref = self.schedules[name]
                plan += [(ref.stored(self.now), slot) for slot in ref.due(self.now, bound)]
                upcoming = ref.next_slot(self.now)
                if upcoming is not None and (earliest is None or upcoming < earliest):
                    earliest = upcoming
            last = max(self.items) if self.items else None
            assert Scheduler(self.q, clock=lambda: self.now, bound=bound).tick() == earliest
            new = iter(self.q.items(self.name, Status.QUEUED, limit=1_000, after=last))
            for read, slot in plan:
                key = slot_key(read.name, slot)
                holder = self.holder_of(key)
                item = self.q.get(holder) if holder is not None else next(new, None)
                assert item is not None and item.dedupe_key == key, (key, item)
                self.slot_fired(read, slot, item.id)
            assert next(new, None) is None  # no item but the slots'

        # -- invariants ------------------------------------------------------------------
        @invariant()
        def store_agrees_with_model(self) -> None:
            for item in self.items.values():
                stored = self.q.get(item.id)
                assert (stored.status, stored.attempts) == (item.status, item.attempts), item
                assert stored.group == item.group, item
                if item.status is Status.CLAIMED:
                    assert (stored.worker, stored.expires_at) == (item.worker, item.expires_at)
                if item.status is Status.QUEUED:
                    assert stored.run_at == item.run_at
            stats = self.q.stats(self.name, now=self.now)
            for status in Status:
                expected = sum(1 for i in self.items.values() if i.status is status)
                assert getattr(stats, status.value) == expected, status
            expired = sum(
                1
                for i in self.items.values()
                if i.status is Status.CLAIMED and i.expires_at and i.expires_at <= self.now
            )
            assert stats.expired == expired

        @invariant()
        def policy_and_live_leases_agree_with_model(self) -> None:
            assert self.q.policy(self.name) == self.policy
            live = Counter(
                i.group
                for i in self.items.values()
                if i.status is Status.CLAIMED and i.expires_at and i.expires_at > self.now
            )
            busiest = sorted(live.items(), key=lambda gl: (-gl[1], gl[0] is not None, gl[0] or ""))
            expected = [GroupLeases(group, count) for group, count in busiest]
            assert self.q.live_leases_by_group(self.name, limit=10, now=self.now) == expected

        @invariant()
        def schedules_agree_with_model(self) -> None:
            mine = [s for s in self.q.schedules(now=self.now) if s.name.startswith(self.name)]
            assert mine == [ref.stored(self.now) for _, ref in sorted(self.schedules.items())]

    return ContractModel


@pytest.mark.timeout(600)
def test_backend_behaves_like_the_model(store_url: str) -> None:
    machine = make_machine(store_url)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
