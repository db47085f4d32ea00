"""Schedules (docs/contract.md, "Schedules"): declaring, replacing, disabling and removing them,
bad input, each slot enqueued exactly once by `fire_slot`, the item a slot enqueues, daylight
saving through the scheduler, and catch-up after an outage.

Schedules are declared and read through each transport (`queue`); slots are fired by the
library on the same store (`direct`), as a scheduler process does. Time is injected (`now=` and
the scheduler's `clock`), never slept through.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.contract.helpers import at
from workclaim import (
    CatchUp,
    GroupLeases,
    Queue,
    Schedule,
    ScheduleNotFound,
    Settings,
    Status,
    ValidationError,
)
from workclaim.scheduler import Scheduler


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A UTC instant to the minute."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def direct(store_url: str, settings: Settings) -> Iterator[Queue]:
    """The library on this test's store: what a scheduler process fires slots with."""
    q = Queue(store_url, settings=settings)
    try:
        yield q
    finally:
        q.close()


def keys(queue: Any, name: str = "jobs") -> list[str]:
    """The dedupe keys of the queue's queued items, in enqueue order: the slots enqueued."""
    return [item.dedupe_key for item in queue.items(name, Status.QUEUED, limit=1000)]


def slot_keys(name: str, *slots: datetime) -> list[str]:
    """The dedupe keys those slots of schedule `name` enqueue."""
    return [f"schedule:{name}:{slot:%Y%m%dT%H%M%SZ}" for slot in slots]


# -- declaring --------------------------------------------------------------------------------
def test_a_new_schedule_is_stored_as_given_with_version_1(queue: Any) -> None:
    made = queue.schedule(
        "nightly",
        "jobs",
        "0 3 * * *",
        payload={"report": "sales", "n": [1, 2]},
        timezone="Europe/Berlin",
        priority=-5,
        max_attempts=3,
        group="tenant-1",
        catch_up="all",
        now=at(0),
    )
    assert isinstance(made, Schedule)
    assert made.name == "nightly" and made.queue == "jobs" and made.cron == "0 3 * * *"
    assert made.payload == {"report": "sales", "n": [1, 2]}
    assert made.timezone == "Europe/Berlin"
    assert (made.priority, made.max_attempts, made.group) == (-5, 3, "tenant-1")
    assert made.catch_up is CatchUp.ALL and made.enabled
    assert (made.version, made.set_at, made.last_slot, made.last_item_id) == (1, at(0), None, None)
    # at(0) is 2030-01-01 12:00 UTC = 13:00 in Berlin: the next 03:00 there is 02:00 UTC
    assert made.next_slot == utc(2030, 1, 2, 2, 0)
    assert queue.get_schedule("nightly", now=at(0)) == made
    assert queue.schedules(now=at(0)) == [made]


def test_defaults(queue: Any) -> None:
    made = queue.schedule("tick", "jobs", "*/5 * * * *", now=at(0))
    assert made.payload is None and made.timezone == "UTC"
    assert (made.priority, made.max_attempts, made.group) == (0, None, None)
    assert made.catch_up is CatchUp.LATEST and made.enabled
    assert made.next_slot == at(300)


def test_schedules_are_listed_by_name(queue: Any) -> None:
    for name in ("b", "c", "a"):
        queue.schedule(name, "jobs", "@hourly", now=at(0))
    assert [s.name for s in queue.schedules(now=at(0))] == ["a", "b", "c"]


def test_aliases_and_a_seconds_field_are_accepted(queue: Any) -> None:
    assert queue.schedule("h", "jobs", "@hourly", now=at(1)).next_slot == at(3600)
    assert queue.schedule("d", "jobs", "@daily", now=at(1)).next_slot == utc(2030, 1, 2, 0, 0)
    assert queue.schedule("s", "jobs", "* * * * * */15", now=at(1)).next_slot == at(15)


def test_declaring_the_same_schedule_again_changes_nothing(queue: Any) -> None:
    first = queue.schedule("s", "jobs", "*/10 * * * *", payload={"a": 1}, group="g", now=at(0))
    again = queue.schedule("s", "jobs", "*/10 * * * *", payload={"a": 1}, group="g", now=at(500))
    assert (again.version, again.set_at) == (1, at(0))
    assert queue.get_schedule("s", now=at(0)) == first


CHANGES: dict[str, Any] = {
    "queue": {"queue": "other"},
    "cron": {"cron": "*/20 * * * *"},
    "payload": {"payload": {"a": 2}},
    "timezone": {"timezone": "Asia/Tokyo"},
    "priority": {"priority": 7},
    "max_attempts": {"max_attempts": 9},
    "group": {"group": "h"},
    "no group": {"group": None},
    "catch_up": {"catch_up": "none"},
    "enabled": {"enabled": False},
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=list(CHANGES))
def test_any_different_setting_bumps_the_version_and_keeps_the_last_slot(
    queue: Any, direct: Queue, change: dict[str, Any]
) -> None:
    base: dict[str, Any] = {
        "queue": "jobs",
        "cron": "*/10 * * * *",
        "payload": {"a": 1},
        "timezone": "UTC",
        "priority": 0,
        "max_attempts": None,
        "group": "g",
        "catch_up": "latest",
        "enabled": True,
    }
    first = queue.schedule("s", now=at(0), **base)
    item_id = direct.fire_slot(first, at(600), now=at(601))
    assert item_id is not None
    changed = queue.schedule("s", now=at(700), **{**base, **change})
    assert (changed.version, changed.set_at) == (2, at(700))
    assert (changed.last_slot, changed.last_item_id) == (at(600), item_id)
    for field, value in change.items():
        assert getattr(changed, field) == value
    again = queue.schedule("s", now=at(800), **{**base, **change})
    assert (again.version, again.set_at) == (2, at(700))


def test_a_change_takes_effect_from_the_next_slot(queue: Any, direct: Queue) -> None:
    first = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    changed = queue.schedule("s", "jobs", "*/10 * * * *", priority=3, now=at(1250))
    # 12:10 and 12:20 came before the change: never enqueued, with either version
    assert direct.fire_slot(changed, at(1200), now=at(1260)) is None
    assert direct.fire_slot(first, at(600), now=at(1260)) is None
    assert changed.next_slot == at(1800)
    assert direct.fire_slot(changed, at(1800), now=at(1800)) is not None
    assert keys(queue) == slot_keys("s", at(1800))


def test_a_disabled_schedule_fires_nothing(queue: Any, direct: Queue) -> None:
    enabled = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    disabled = queue.schedule("s", "jobs", "*/10 * * * *", enabled=False, now=at(1))
    assert not disabled.enabled and disabled.next_slot is None
    assert direct.fire_slot(enabled, at(600), now=at(600)) is None  # read before the change
    assert direct.fire_slot(disabled, at(600), now=at(600)) is None  # the current version
    assert Scheduler(direct, clock=lambda: at(605)).tick() is None
    assert keys(queue) == []
    assert queue.get_schedule("s", now=at(605)).last_slot is None


def test_removing_a_schedule_stops_it_and_leaves_its_items(queue: Any, direct: Queue) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    item_id = direct.fire_slot(made, at(600), now=at(600))
    assert queue.unschedule("s") is True
    assert queue.unschedule("s") is False
    with pytest.raises(ScheduleNotFound):
        queue.get_schedule("s")
    assert queue.schedules() == []
    assert direct.fire_slot(made, at(1200), now=at(1200)) is None
    assert Scheduler(direct, clock=lambda: at(1205)).tick() is None
    assert [item.id for item in queue.items("jobs", Status.QUEUED)] == [item_id]


def test_a_removed_schedule_declared_again_starts_afresh(queue: Any, direct: Queue) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    assert direct.fire_slot(made, at(600), now=at(600)) is not None
    queue.unschedule("s")
    again = queue.schedule("s", "jobs", "*/10 * * * *", now=at(700))
    assert (again.version, again.set_at, again.last_slot, again.last_item_id) == (
        1,
        at(700),
        None,
        None,
    )
    assert direct.fire_slot(again, at(600), now=at(700)) is None  # before it existed


def test_an_unknown_schedule_is_not_found(queue: Any) -> None:
    with pytest.raises(ScheduleNotFound) as raised:
        queue.get_schedule("nope")
    assert isinstance(raised.value, LookupError)
    with pytest.raises(ScheduleNotFound):
        queue.run_schedule_now("nope")


BAD: dict[str, dict[str, Any]] = {
    "cron words": {"cron": "every day"},
    "cron minute 60": {"cron": "60 * * * *"},
    "cron four fields": {"cron": "* * * *"},
    "cron empty": {"cron": ""},
    "cron not text": {"cron": 5},
    "cron unknown alias": {"cron": "@fortnightly"},
    "unknown time zone": {"timezone": "Mars/Olympus"},
    "empty time zone": {"timezone": ""},
    "catch_up": {"catch_up": "sometimes"},
    "catch_up case": {"catch_up": "ALL"},
    "name too long": {"name": "x" * 81},
    "name empty": {"name": ""},
    "name spaces": {"name": "a b"},
    "queue name": {"queue": "bad queue"},
    "payload not JSON": {"payload": {1, 2}},
    "payload NaN": {"payload": float("nan")},
    "priority text": {"priority": "high"},
    "priority too big": {"priority": 2**31},
    "priority bool": {"priority": True},
    "max_attempts 0": {"max_attempts": 0},
    "group": {"group": "bad group"},
    "enabled not bool": {"enabled": "yes"},
}


@pytest.mark.parametrize("bad", BAD.values(), ids=list(BAD))
def test_bad_input_is_refused_and_nothing_is_stored(queue: Any, bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"name": "s", "queue": "jobs", "cron": "*/10 * * * *", **bad}
    with pytest.raises(ValidationError):
        queue.schedule(args.pop("name"), args.pop("queue"), args.pop("cron"), now=at(0), **args)
    assert queue.schedules(now=at(0)) == []


def test_bad_input_leaves_an_existing_schedule_alone(queue: Any) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    with pytest.raises(ValidationError):
        queue.schedule("s", "jobs", "*/10 * * * *", timezone="Nowhere/Else", now=at(1))
    assert queue.get_schedule("s", now=at(0)) == made


def test_a_name_of_80_characters_is_accepted(queue: Any) -> None:
    name = "n" * 80
    assert queue.schedule(name, "jobs", "@hourly", now=at(0)).name == name


# -- firing a slot ----------------------------------------------------------------------------
def test_a_slot_enqueues_the_schedules_item(queue: Any, direct: Queue) -> None:
    made = queue.schedule(
        "report",
        "reports",
        "*/10 * * * *",
        payload={"kind": "daily", "ids": [1, 2]},
        priority=4,
        max_attempts=2,
        group="tenant-9",
        now=at(0),
    )
    item_id = direct.fire_slot(made, at(600), now=at(601))
    assert item_id is not None
    item = queue.get(item_id)
    assert (item.queue, item.payload, item.status) == (
        "reports",
        {"kind": "daily", "ids": [1, 2]},
        Status.QUEUED,
    )
    assert (item.priority, item.max_attempts, item.group) == (4, 2, "tenant-9")
    assert item.dedupe_key == "schedule:report:20300101T121000Z"
    lease = queue.claim("reports", worker="w1", now=at(601))[0]
    assert (lease.id, lease.payload, lease.group) == (item_id, item.payload, "tenant-9")


def test_a_slots_item_is_under_the_queues_flow_control(queue: Any, direct: Queue) -> None:
    queue.set_policy("jobs", concurrency=1)
    made = queue.schedule("s", "jobs", "*/10 * * * *", group="tenant-1", now=at(0))
    first = direct.fire_slot(made, at(600), now=at(600))
    second = direct.fire_slot(queue.get_schedule("s", now=at(600)), at(1200), now=at(1200))
    leases = queue.claim("jobs", worker="w1", limit=5, now=at(1200))
    assert [(lease.id, lease.group) for lease in leases] == [(first, "tenant-1")]
    assert queue.live_leases_by_group("jobs", now=at(1200)) == [GroupLeases("tenant-1", 1)]
    queue.complete(leases[0], now=at(1201))
    assert [lease.id for lease in queue.claim("jobs", worker="w1", now=at(1201))] == [second]


def test_a_slot_fires_into_a_paused_queue(queue: Any, direct: Queue) -> None:
    queue.pause("jobs")
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    item_id = direct.fire_slot(made, at(600), now=at(600))
    assert queue.claim("jobs", worker="w1", now=at(600)) == []
    queue.resume("jobs")
    assert [lease.id for lease in queue.claim("jobs", worker="w1", now=at(601))] == [item_id]


def test_a_live_item_holding_the_slots_key_is_the_slots_item(queue: Any, direct: Queue) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    holder = queue.enqueue("jobs", "mine", dedupe_key="schedule:s:20300101T121000Z", now=at(1))
    assert direct.fire_slot(made, at(600), now=at(600)) == holder  # as enqueue would
    got = queue.get_schedule("s", now=at(600))
    assert (got.last_slot, got.last_item_id) == (at(600), holder)
    assert queue.stats("jobs", now=at(600)).queued == 1


def test_a_slot_without_max_attempts_gets_the_queues_default(queue: Any, direct: Queue) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    plain = queue.get(queue.enqueue("jobs", 0, now=at(0))).max_attempts
    item_id = direct.fire_slot(made, at(600), now=at(600))
    assert queue.get(item_id).max_attempts == plain


def test_firing_records_the_slot_and_moves_the_next_one(queue: Any, direct: Queue) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    item_id = direct.fire_slot(made, at(600), now=at(602))
    got = queue.get_schedule("s", now=at(602))
    assert (got.last_slot, got.last_item_id, got.next_slot) == (at(600), item_id, at(1200))
    assert (got.version, got.set_at) == (1, at(0))


def test_each_slot_is_enqueued_once(queue: Any, direct: Queue) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    first = direct.fire_slot(made, at(600), now=at(600))
    assert first is not None
    assert direct.fire_slot(made, at(600), now=at(601)) is None  # the same slot again
    read_again = queue.get_schedule("s", now=at(601))
    assert direct.fire_slot(read_again, at(600), now=at(602)) is None
    assert keys(queue) == slot_keys("s", at(600))
    assert queue.get_schedule("s", now=at(602)).last_item_id == first


def test_the_same_slot_is_refused_after_its_item_finished(queue: Any, direct: Queue) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    item_id = direct.fire_slot(made, at(600), now=at(600))
    lease = queue.claim("jobs", worker="w1", now=at(601))[0]
    queue.complete(lease, now=at(602))  # the dedupe key is free again; the slot is not
    assert direct.fire_slot(made, at(600), now=at(603)) is None
    assert queue.get(item_id).status is Status.DONE
    assert queue.stats("jobs", now=at(603)).queued == 0


def test_an_older_slot_after_a_newer_one_is_refused(queue: Any, direct: Queue) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    assert direct.fire_slot(made, at(1200), now=at(1200)) is not None
    assert direct.fire_slot(made, at(600), now=at(1201)) is None
    assert keys(queue) == slot_keys("s", at(1200))
    assert queue.get_schedule("s", now=at(1201)).last_slot == at(1200)


def test_a_stale_version_is_refused(queue: Any, direct: Queue) -> None:
    old = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    queue.schedule("s", "jobs", "*/10 * * * *", payload="new", now=at(1))
    assert direct.fire_slot(old, at(600), now=at(600)) is None
    assert keys(queue) == []
    current = queue.get_schedule("s", now=at(600))
    item_id = direct.fire_slot(current, at(600), now=at(600))
    assert item_id is not None and queue.get(item_id).payload == "new"


@pytest.mark.parametrize("slot", [-600, -1, 0], ids=["before", "a second before", "at set_at"])
def test_a_slot_at_or_before_set_at_is_refused(queue: Any, direct: Queue, slot: int) -> None:
    made = queue.schedule("s", "jobs", "* * * * * *", now=at(0))
    assert direct.fire_slot(made, at(slot), now=at(1)) is None
    assert direct.fire_slot(made, at(1), now=at(1)) is not None
    assert keys(queue) == slot_keys("s", at(1))


def test_a_slot_of_a_removed_schedule_is_refused(queue: Any, direct: Queue) -> None:
    made = queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    queue.unschedule("s")
    assert direct.fire_slot(made, at(600), now=at(600)) is None
    assert queue.stats("jobs", now=at(600)).queued == 0


def test_run_now_enqueues_and_leaves_the_slots_alone(queue: Any, direct: Queue) -> None:
    made = queue.schedule(
        "s", "jobs", "*/10 * * * *", payload=[1], priority=2, group="g", max_attempts=4, now=at(0)
    )
    first = queue.run_schedule_now("s", now=at(30))
    second = queue.run_schedule_now("s", now=at(31))
    assert first != second
    for item_id in (first, second):
        item = queue.get(item_id)
        assert (item.queue, item.payload, item.priority, item.group, item.max_attempts) == (
            "jobs",
            [1],
            2,
            "g",
            4,
        )
    got = queue.get_schedule("s", now=at(31))
    assert (got.version, got.set_at, got.last_slot, got.last_item_id) == (1, at(0), None, None)
    assert got.next_slot == made.next_slot == at(600)
    assert direct.fire_slot(got, at(600), now=at(600)) is not None  # its slot still fires


# -- the scheduler across daylight saving (2026) ----------------------------------------------
def drive(
    direct: Queue, start: datetime, end: datetime, *, late: float = 5.0, most: float = 1200.0
) -> None:
    """Run the scheduler as its loop does, by an injected clock: a pass at `start`, then each
    pass `late` seconds after the earliest next slot the previous pass returned, or `most`
    seconds after the previous pass if that is sooner (so passes also land between slots, in a
    repeated hour's second pass too), until `end`."""
    clock = [start]
    scheduler = Scheduler(direct, clock=lambda: clock[0])
    for _ in range(2000):
        earliest = scheduler.tick()
        if clock[0] >= end:
            return
        step = clock[0] + timedelta(seconds=most)
        if earliest is not None:
            step = min(step, earliest + timedelta(seconds=late))
        clock[0] = min(step, end)
    raise AssertionError("the scheduler did not reach the end")


# (zone, cron, declared at, run until, the UTC slots enqueued)
DST: dict[str, tuple[str, str, datetime, datetime, list[datetime]]] = {
    # Berlin springs forward on 2026-03-29 at 02:00 CET (01:00 UTC): 02:30 does not exist and
    # fires once, at 03:00 CEST (01:00 UTC)
    "Berlin spring, daily 02:30": (
        "Europe/Berlin",
        "30 2 * * *",
        utc(2026, 3, 27, 12, 0),
        utc(2026, 3, 30, 12, 0),
        [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)],
    ),
    # Berlin falls back on 2026-10-25 at 03:00 CEST (01:00 UTC): 02:30 comes twice (00:30 and
    # 01:30 UTC) and fires once, on the first pass
    "Berlin fall, daily 02:30": (
        "Europe/Berlin",
        "30 2 * * *",
        utc(2026, 10, 23, 12, 0),
        utc(2026, 10, 26, 12, 0),
        [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
    ),
    # New York springs forward on 2026-03-08 at 02:00 EST (07:00 UTC)
    "New York spring, daily 02:30": (
        "America/New_York",
        "30 2 * * *",
        utc(2026, 3, 6, 17, 0),
        utc(2026, 3, 9, 17, 0),
        [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)],
    ),
    # New York falls back on 2026-11-01 at 02:00 EDT (06:00 UTC): its repeated hour is 01:xx,
    # so 01:30 comes twice (05:30 and 06:30 UTC) and fires once, on the first pass
    "New York fall, daily 01:30": (
        "America/New_York",
        "30 1 * * *",
        utc(2026, 10, 30, 17, 0),
        utc(2026, 11, 2, 17, 0),
        [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
    ),
    # ... and 02:30 that night comes once (EST)
    "New York fall, daily 02:30": (
        "America/New_York",
        "30 2 * * *",
        utc(2026, 10, 31, 17, 0),
        utc(2026, 11, 1, 17, 0),
        [utc(2026, 11, 1, 7, 30)],
    ),
}


def every_half_hour(start: datetime, end: datetime) -> list[datetime]:
    """start, start + 30 min, ... up to end (inclusive)."""
    slots = []
    while start <= end:
        slots.append(start)
        start += timedelta(minutes=30)
    return slots


# A wildcard hour fires every 30 minutes of real time through both nights: in spring the skipped
# local hour has no slots and nothing doubles up; in fall the repeated hour fires in both passes.
for _name, (_zone, _first, _last) in {
    "Berlin spring": ("Europe/Berlin", utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 3, 0)),
    "Berlin fall": ("Europe/Berlin", utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0)),
    "New York spring": ("America/New_York", utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 9, 0)),
    "New York fall": ("America/New_York", utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 8, 0)),
}.items():
    DST[f"{_name}, every 30 minutes"] = (
        _zone,
        "*/30 * * * *",
        _first - timedelta(minutes=1),
        _last,
        every_half_hour(_first, _last),
    )


@pytest.mark.parametrize("case", DST.values(), ids=list(DST))
def test_daylight_saving_nights(
    queue: Any, direct: Queue, case: tuple[str, str, datetime, datetime, list[datetime]]
) -> None:
    zone, cron, declared, end, expected = case
    queue.schedule("dst", "jobs", cron, timezone=zone, now=declared)
    drive(direct, declared, end)
    assert keys(queue) == slot_keys("dst", *expected)


def test_a_scheduler_pass_on_time_fires_the_due_slot_once(queue: Any, direct: Queue) -> None:
    queue.schedule("s", "jobs", "*/10 * * * *", now=at(0))
    scheduler = Scheduler(direct, clock=lambda: at(630))  # 30 s late: on time
    assert scheduler.tick() == at(1200)
    assert scheduler.tick() == at(1200)
    assert Scheduler(direct, clock=lambda: at(640)).tick() == at(1200)  # a second scheduler
    assert scheduler.enqueued == 1
    assert keys(queue) == slot_keys("s", at(600))


# -- catch-up after an outage -----------------------------------------------------------------
# Declared at 12:00 with a slot every 10 minutes; no scheduler runs until 12:35, when 12:10,
# 12:20 and 12:30 are all more than a minute late.
OUTAGE_END = at(2100)
MISSED = [at(600), at(1200), at(1800)]


def outage(queue: Any, catch_up: str) -> None:
    queue.schedule("s", "jobs", "*/10 * * * *", catch_up=catch_up, now=at(0))


def test_catch_up_latest_fires_the_most_recent_missed_slot(
    queue: Any, direct: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    outage(queue, "latest")
    with caplog.at_level(logging.WARNING, logger="workclaim.scheduler"):
        assert Scheduler(direct, clock=lambda: OUTAGE_END).tick() == at(2400)
    assert keys(queue) == slot_keys("s", at(1800))
    assert "catch_up=latest enqueues 1 due slot(s) and leaves out at least 1" in caplog.text
    drive(direct, at(2405), at(2405))
    assert keys(queue) == slot_keys("s", at(1800), at(2400))


def test_catch_up_latest_prefers_a_slot_on_time(queue: Any, direct: Queue) -> None:
    outage(queue, "latest")
    Scheduler(direct, clock=lambda: at(1830)).tick()  # 12:30 is 30 s late: on time
    assert keys(queue) == slot_keys("s", at(1800))


def test_catch_up_none_fires_no_missed_slot(
    queue: Any, direct: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    outage(queue, "none")
    with caplog.at_level(logging.WARNING, logger="workclaim.scheduler"):
        assert Scheduler(direct, clock=lambda: OUTAGE_END).tick() == at(2400)
    assert keys(queue) == []
    assert "catch_up=none enqueues 0 due slot(s) and leaves out at least 2" in caplog.text
    got = queue.get_schedule("s", now=OUTAGE_END)
    assert (got.last_slot, got.next_slot) == (None, at(2400))
    drive(direct, at(2405), at(2405))
    assert keys(queue) == slot_keys("s", at(2400))


@pytest.mark.parametrize(
    ("catch_up", "fired", "left_out"), [("latest", 1, 0), ("none", 0, 1)], ids=["latest", "none"]
)
def test_the_warning_counts_a_single_missed_slot_exactly(
    queue: Any,
    direct: Queue,
    caplog: pytest.LogCaptureFixture,
    catch_up: str,
    fired: int,
    left_out: int,
) -> None:
    queue.schedule("s", "jobs", "*/10 * * * *", catch_up=catch_up, now=at(1500))
    with caplog.at_level(logging.WARNING, logger="workclaim.scheduler"):
        Scheduler(direct, clock=lambda: OUTAGE_END).tick()  # only 12:30 came, 5 minutes ago
    assert keys(queue) == slot_keys("s", at(1800))[:fired]
    assert f"enqueues {fired} due slot(s) and leaves out {left_out}\n" in caplog.text


def test_catch_up_all_fires_every_missed_slot_oldest_first(
    queue: Any, direct: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    outage(queue, "all")
    with caplog.at_level(logging.WARNING, logger="workclaim.scheduler"):
        Scheduler(direct, clock=lambda: OUTAGE_END).tick()
    assert keys(queue) == slot_keys("s", *MISSED)
    assert "catch_up=all enqueues 3 due slot(s) and leaves out 0" in caplog.text
    assert queue.get_schedule("s", now=OUTAGE_END).last_slot == at(1800)


def test_catch_up_all_is_bounded_per_pass_to_the_most_recent(
    queue: Any, direct: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    outage(queue, "all")
    with caplog.at_level(logging.WARNING, logger="workclaim.scheduler"):
        scheduler = Scheduler(direct, clock=lambda: OUTAGE_END, bound=2)
        scheduler.tick()
    assert keys(queue) == slot_keys("s", at(1200), at(1800))
    assert "catch_up=all enqueues 2 due slot(s) and leaves out at least 1" in caplog.text
    scheduler.tick()  # the slot left out is older than the last one fired: gone for good
    assert scheduler.enqueued == 2
    assert keys(queue) == slot_keys("s", at(1200), at(1800))
