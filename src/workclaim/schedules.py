"""Cron expressions and slots: when a schedule fires, computed in its time zone, kept in UTC.

Parsing and stepping are `cronsim`'s (docs/decisions.md): five fields, or six with seconds last,
plus the `@hourly`-style aliases mapped here. Daylight saving follows cronsim (as cronie does): a
slot inside a skipped hour fires once, at the first valid time after it (02:30 on the spring-
forward night in Europe/Berlin fires at 03:00); a slot with a fixed hour inside a repeated hour
fires once, on the first pass; a wildcard hour (`*/30 * * * *`) fires in both passes, since those
are different instants. A slot is a whole second in UTC.

The store keeps each schedule's `last_slot` and accepts a slot only above it and above the time
the schedule was set (`Backend.fire_schedule`), so these functions only say which slots are due:
whichever scheduler asks first writes the item, the others' writes create nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from workclaim.errors import ValidationError
from workclaim.models import CatchUp, Schedule
from workclaim.validation import check_name

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# With catch_up="none" a due slot still fires if it is at most this late: a scheduler that woke
# a little after the slot (a busy machine) is on time, one that was not running is not.
ON_TIME_SECONDS = 60.0
# catch_up="all" enqueues at most this many missed slots per pass (the most recent ones).
CATCH_UP_BOUND = 100
MAX_SCHEDULE_NAME = 80  # leaves room in the 128-character dedupe key that names the slot


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed, valid cron expression in a time zone."""

    expression: str
    timezone: str

    @classmethod
    def parse(cls, expression: object, timezone: object = "UTC") -> Cron:
        """Validate `expression` and `timezone`; raises `ValidationError` saying what is wrong."""
        if not isinstance(expression, str) or not expression.strip():
            raise ValidationError(f"invalid cron expression {expression!r}: give a string")
        if not isinstance(timezone, str) or not timezone:
            raise ValidationError(f"invalid time zone {timezone!r}: give an IANA name")
        expression = " ".join(expression.split())
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "America", a folder
            raise ValidationError(
                f"unknown time zone {timezone!r}: give an IANA name such as 'Europe/Berlin'"
            ) from exc
        try:
            CronSim(_expand(expression), datetime(2026, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            raise ValidationError(
                f"invalid cron expression {expression!r}: {exc} (five fields 'minute hour "
                "day month weekday', an optional sixth for seconds, or @hourly/@daily/"
                "@weekly/@monthly/@yearly)"
            ) from exc
        return cls(expression, timezone)

    def after(self, moment: datetime) -> Iterator[datetime]:
        """The slots strictly after `moment`, ascending, in UTC. Inside a repeated hour's second
        pass cronsim first yields the fixed-hour slot of the first pass, an instant already
        gone (02:30 CEST when it is 02:10 CET): it is left out, as `until` leaves out the
        instants after its moment."""
        zone = ZoneInfo(self.timezone)
        for slot in CronSim(_expand(self.expression), moment.astimezone(zone)):
            utc = slot.astimezone(UTC)
            if utc > moment:
                yield utc

    def until(self, moment: datetime) -> Iterator[datetime]:
        """The slots at or before `moment`, descending, in UTC."""
        zone = ZoneInfo(self.timezone)
        start = _whole_second(moment) + timedelta(seconds=1)
        for slot in CronSim(_expand(self.expression), start.astimezone(zone), reverse=True):
            utc = slot.astimezone(UTC)
            if utc <= moment:
                yield utc


def _expand(expression: str) -> str:
    """The expression as cronsim reads it: an alias spelled out, and a six-field expression's
    seconds (ours last, as croniter and the contract have them) moved first, where cronsim
    reads them (left as they are, `* * * * * */15` would fire every second of every Sunday)."""
    fields = ALIASES.get(expression.lower(), expression).split()
    if len(fields) == 6:
        fields = [fields[5], *fields[:5]]
    return " ".join(fields)


def _whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def cursor(schedule: Schedule) -> datetime | None:
    """The time after which the schedule's slots are still to fire: the later of when it was set
    and its last slot (None only for a schedule never stored)."""
    marks = [t for t in (schedule.set_at, schedule.last_slot) if t is not None]
    return max(marks) if marks else None


def next_slot(schedule: Schedule, now: datetime) -> datetime | None:
    """The schedule's first slot after `now` and after its cursor (None when disabled)."""
    if not schedule.enabled:
        return None
    start = max(now, cursor(schedule) or now)
    return next(Cron(schedule.cron, schedule.timezone).after(start), None)


@dataclass(frozen=True, slots=True)
class Due:
    """What one pass of a scheduler fires for a schedule: `slots` ascending; `missed`: whether
    some due slot was more than `ON_TIME_SECONDS` late (no scheduler ran then), so the
    schedule's catch-up decided; `skipped`: how many due slots it leaves out, a lower bound
    when `partial` (the walk back stopped before the cursor, as no older slot would fire)."""

    slots: list[datetime]
    missed: bool = False
    skipped: int = 0
    partial: bool = False


def due_slots(schedule: Schedule, now: datetime, *, bound: int = CATCH_UP_BOUND) -> Due:
    """The slots to fire now, each after the schedule's cursor and at or before `now`.

    Slots at most `ON_TIME_SECONDS` late are on time and all fire (a busy scheduler woke a
    little late). Older ones were missed: "all" fires them too (the `bound` most recent due
    slots in all), "latest" fires only the most recent missed slot and only when no slot is on
    time, "none" fires none of them.
    """
    if not schedule.enabled:
        return Due([])
    start = cursor(schedule)
    on_time: list[datetime] = []
    missed: list[datetime] = []
    more = False
    for slot in Cron(schedule.cron, schedule.timezone).until(now):
        if start is not None and slot <= start:
            break
        if len(on_time) + len(missed) == bound or (missed and schedule.catch_up is not CatchUp.ALL):
            more = True  # a due slot left out; older ones are not fired: no need to walk to them
            break
        if (now - slot).total_seconds() <= ON_TIME_SECONDS:
            on_time.append(slot)
        else:
            missed.append(slot)
    if not missed:
        return Due(sorted(on_time), skipped=int(more), partial=more)
    if schedule.catch_up is CatchUp.ALL:
        fired = on_time + missed
    elif schedule.catch_up is CatchUp.LATEST and not on_time:
        fired = missed[:1]
    else:
        fired = on_time
    skipped = len(on_time) + len(missed) - len(fired) + int(more)
    return Due(sorted(fired), missed=True, skipped=skipped, partial=more)


def slot_key(name: str, slot: datetime) -> str:
    """The dedupe key of the item a slot enqueues: it names the schedule and the slot (UTC)."""
    return f"schedule:{name}:{slot.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def check_schedule_name(value: object) -> str:
    """A schedule name: like a queue name, at most `MAX_SCHEDULE_NAME` characters."""
    name = check_name(value, "schedule name")
    if len(name) > MAX_SCHEDULE_NAME:
        raise ValidationError(
            f"invalid schedule name {name[:20]!r}...: at most {MAX_SCHEDULE_NAME} characters"
        )
    return name


def check_catch_up(value: object) -> CatchUp:
    """`latest`, `none` or `all`."""
    if isinstance(value, str) and value in CatchUp._value2member_map_:
        return CatchUp(value)
    raise ValidationError(f"invalid catch_up {value!r}: use 'latest', 'none' or 'all'")
