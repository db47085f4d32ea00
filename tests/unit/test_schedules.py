"""`workclaim.schedules`, the pure part of schedules: parsing cron expressions, stepping through
slots in a time zone (daylight saving included), the next slot, and which slots are due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from workclaim import CatchUp, Schedule, ValidationError
from workclaim.schedules import (
    ON_TIME_SECONDS,
    Cron,
    check_catch_up,
    check_schedule_name,
    due_slots,
    next_slot,
    slot_key,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def every_ten_minutes(catch_up: CatchUp = CatchUp.LATEST, **fields: object) -> Schedule:
    """A schedule set at T0 (12:00) firing at :00, :10, :20, ... (UTC)."""
    return Schedule("s", "jobs", "*/10 * * * *", catch_up=catch_up, version=1, set_at=T0, **fields)  # type: ignore[arg-type]


# -- parsing ----------------------------------------------------------------------------------
def test_parse_keeps_a_valid_expression_with_its_spacing_normalised() -> None:
    assert Cron.parse("  */5   *\t* * * ", "Europe/Berlin") == Cron("*/5 * * * *", "Europe/Berlin")


@pytest.mark.parametrize("alias", ["@hourly", "@HOURLY", "@Hourly"])
def test_aliases_are_case_insensitive(alias: str) -> None:
    assert next(Cron.parse(alias).after(at(1))) == at(3600)


@pytest.mark.parametrize(
    ("alias", "first"),
    [
        ("@daily", datetime(2030, 1, 2, tzinfo=UTC)),
        ("@midnight", datetime(2030, 1, 2, tzinfo=UTC)),
        ("@weekly", datetime(2030, 1, 6, tzinfo=UTC)),  # a Sunday
        ("@monthly", datetime(2030, 2, 1, tzinfo=UTC)),
        ("@yearly", datetime(2031, 1, 1, tzinfo=UTC)),
        ("@annually", datetime(2031, 1, 1, tzinfo=UTC)),
    ],
)
def test_every_alias(alias: str, first: datetime) -> None:
    assert next(Cron.parse(alias).after(T0)) == first


def test_a_sixth_field_is_seconds() -> None:
    slots = list(islice(Cron.parse("* * * * * */15").after(at(1)), 5))
    assert slots == [at(15), at(30), at(45), at(60), at(75)]
    assert next(Cron.parse("0 13 * * * 30").after(T0)) == T0.replace(hour=13, second=30)


@pytest.mark.parametrize(
    "expression",
    ["", "   ", "every day", "60 * * * *", "* 24 * * *", "* * * *", "* * * * * * *", "@never", 7],
)
def test_a_bad_expression_is_a_validation_error(expression: object) -> None:
    with pytest.raises(ValidationError, match="cron expression"):
        Cron.parse(expression)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", None, 1])
def test_a_bad_time_zone_is_a_validation_error(zone: object) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        Cron.parse("* * * * *", zone)


# -- stepping ---------------------------------------------------------------------------------
def test_after_is_strictly_after_and_until_is_at_or_before() -> None:
    cron = Cron.parse("*/10 * * * *")
    assert list(islice(cron.after(at(600)), 2)) == [at(1200), at(1800)]
    assert list(islice(cron.until(at(600)), 2)) == [at(600), at(0)]
    assert list(islice(cron.until(at(599.5)), 2)) == [at(0), at(-600)]


def test_slots_are_whole_seconds_in_utc() -> None:
    slot = next(Cron.parse("0 9 * * *", "Asia/Tokyo").after(T0))
    assert slot == datetime(2030, 1, 2, 0, 0, tzinfo=UTC) and slot.tzinfo is UTC
    assert slot.microsecond == 0


# Repeated hours: Berlin 02:00-03:00 local on 2026-10-25 (00:00-01:00 UTC then 01:00-02:00
# UTC), New York 01:00-02:00 local on 2026-11-01 (05:00-06:00 UTC then 06:00-07:00 UTC).
REPEATED = [
    ("Europe/Berlin", "30 2 * * *", datetime(2026, 10, 25, 1, tzinfo=UTC)),
    ("America/New_York", "30 1 * * *", datetime(2026, 11, 1, 6, tzinfo=UTC)),
]


@pytest.mark.parametrize(("zone", "cron", "second_pass"), REPEATED)
@pytest.mark.parametrize("minute", [0, 10, 29, 30, 31, 59])
def test_after_never_yields_a_slot_already_gone_in_a_repeated_hour(
    zone: str, cron: str, second_pass: datetime, minute: int
) -> None:
    moment = second_pass + timedelta(minutes=minute)
    slot = next(Cron.parse(cron, zone).after(moment))
    assert slot > moment
    assert slot.astimezone(ZoneInfo(zone)).day == second_pass.day + 1  # the next day's


@pytest.mark.parametrize(("zone", "cron", "second_pass"), REPEATED)
def test_a_fixed_hour_in_a_repeated_hour_is_one_slot_on_the_first_pass(
    zone: str, cron: str, second_pass: datetime
) -> None:
    first_pass = second_pass - timedelta(minutes=30)
    assert next(Cron.parse(cron, zone).until(second_pass + timedelta(hours=1))) == first_pass


# -- next slot and due slots ------------------------------------------------------------------
def test_next_slot_is_after_now_and_after_the_cursor() -> None:
    assert next_slot(every_ten_minutes(), at(5)) == at(600)
    assert next_slot(every_ten_minutes(last_slot=at(1200)), at(5)) == at(1800)
    assert next_slot(every_ten_minutes(enabled=False), at(5)) is None


def test_slots_at_most_a_minute_late_are_on_time_and_all_fire() -> None:
    every_second = Schedule("s", "jobs", "* * * * * *", version=1, set_at=T0)
    due = due_slots(every_second, at(ON_TIME_SECONDS))
    assert due.slots == [at(n) for n in range(1, 61)]
    assert (due.missed, due.skipped, due.partial) == (False, 0, False)
    assert due_slots(every_ten_minutes(), at(600 + ON_TIME_SECONDS)).slots == [at(600)]


def test_nothing_is_due_before_the_first_slot_or_after_the_last_fired() -> None:
    assert due_slots(every_ten_minutes(), at(599)).slots == []
    assert due_slots(every_ten_minutes(last_slot=at(600)), at(630)).slots == []
    assert due_slots(every_ten_minutes(enabled=False), at(630)).slots == []


@pytest.mark.parametrize(
    ("catch_up", "slots", "skipped", "partial"),
    [
        (CatchUp.LATEST, [at(1800)], 1, True),
        (CatchUp.NONE, [], 2, True),
        (CatchUp.ALL, [at(600), at(1200), at(1800)], 0, False),
    ],
)
def test_catch_up_after_an_outage(
    catch_up: CatchUp, slots: list[datetime], skipped: int, partial: bool
) -> None:
    due = due_slots(every_ten_minutes(catch_up), at(2100))  # 12:10, 12:20, 12:30 all late
    assert (due.slots, due.missed, due.skipped, due.partial) == (slots, True, skipped, partial)


@pytest.mark.parametrize(
    ("catch_up", "slots", "skipped"),
    [(CatchUp.LATEST, [at(1800)], 0), (CatchUp.NONE, [], 1), (CatchUp.ALL, [at(1800)], 0)],
)
def test_one_missed_slot_is_counted_exactly(
    catch_up: CatchUp, slots: list[datetime], skipped: int
) -> None:
    due = due_slots(every_ten_minutes(catch_up, last_slot=at(1200)), at(2100))
    assert (due.slots, due.missed, due.skipped, due.partial) == (slots, True, skipped, False)


def test_latest_fires_no_missed_slot_when_one_is_on_time() -> None:
    due = due_slots(every_ten_minutes(CatchUp.LATEST), at(1830))
    assert (due.slots, due.missed, due.skipped, due.partial) == ([at(1800)], True, 2, True)


def test_all_fires_the_bound_most_recent() -> None:
    due = due_slots(every_ten_minutes(CatchUp.ALL), at(2100), bound=2)
    assert (due.slots, due.skipped, due.partial) == ([at(1200), at(1800)], 1, True)


# -- names and keys ---------------------------------------------------------------------------
def test_the_slot_key_names_the_schedule_and_the_slot_in_utc() -> None:
    berlin = datetime(2026, 3, 29, 3, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert slot_key("nightly", berlin) == "schedule:nightly:20260329T010000Z"
    assert len(slot_key("n" * 80, T0)) <= 128  # within a dedupe key's limit


def test_schedule_names_are_queue_names_of_at_most_80_characters() -> None:
    assert check_schedule_name("n" * 80) == "n" * 80
    for bad in ("n" * 81, "", "a b", "-x", None):
        with pytest.raises(ValidationError, match="schedule name"):
            check_schedule_name(bad)


def test_catch_up_values() -> None:
    assert [check_catch_up(v) for v in ("latest", "none", "all")] == list(CatchUp)
    for bad in ("ALL", "", None, CatchUp):
        with pytest.raises(ValidationError, match="catch_up"):
            check_catch_up(bad)
