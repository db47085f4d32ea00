"""The reference for schedules in the model test (tests/model/test_model.py), written from the
contract (docs/contract.md "Schedules") without the library's cron code: its crons fire on the
whole seconds whose second and minute are multiples of two steps (`CRONS`), which plain
arithmetic enumerates.

It says what declaring a schedule stores, which offered slot the store accepts, and which slots
one scheduler pass fires: the `bound` most recent due slots; of those, "all" fires every one,
"none" only those at most 60 s late (on time), "latest" the on-time ones or, if there are none,
the most recent late one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from workclaim import CatchUp, Schedule

# The crons the model declares -> (step of the second, step of the minute) at which each fires:
# every 5 s, at seconds 0, 7, ... 56 of each minute, every minute, every third minute (so the
# most recent slot can be more than 60 s late).
CRONS = {
    "* * * * * */5": (5, 1),
    "* * * * * */7": (7, 1),
    "* * * * *": (60, 1),
    "*/3 * * * *": (60, 3),
}
LONGEST_GAP = timedelta(minutes=3)
ON_TIME = timedelta(seconds=60)
SECOND = timedelta(seconds=1)


def fires(cron: str, moment: datetime) -> bool:
    """Whether `cron` (one of `CRONS`) fires at the whole second `moment`."""
    second, minute = CRONS[cron]
    return moment.second % second == 0 and moment.minute % minute == 0


@dataclass(frozen=True)
class ScheduleSettings:
    """What a schedule is declared with (everything `schedule()` takes but its name)."""

    queue: str
    cron: str
    payload: Any
    priority: int
    max_attempts: int | None
    group: str | None
    catch_up: CatchUp
    enabled: bool


@dataclass(frozen=True)
class RefSchedule:
    """A stored schedule as the contract has it."""

    name: str
    settings: ScheduleSettings
    version: int
    set_at: datetime
    last_slot: datetime | None = None
    last_item_id: int | None = None

    def declared(self, settings: ScheduleSettings, now: datetime) -> RefSchedule:
        """After `schedule()` again: unchanged if identical, else a new version from `now`."""
        if settings == self.settings:
            return self
        return replace(self, settings=settings, version=self.version + 1, set_at=now)

    def accepts(self, version: int, slot: datetime) -> bool:
        """Whether the store takes `slot` offered by a scheduler that read `version`."""
        return (
            self.settings.enabled
            and version == self.version
            and slot > self.set_at
            and (self.last_slot is None or slot > self.last_slot)
        )

    def fired(self, slot: datetime, item_id: int) -> RefSchedule:
        return replace(self, last_slot=slot, last_item_id=item_id)

    def cursor(self) -> datetime:
        return max(self.set_at, self.last_slot or self.set_at)

    def slots(self, after: datetime, upto: datetime) -> list[datetime]:
        """The schedule's slots in (after, upto], ascending."""
        found, moment = [], after.replace(microsecond=0) + SECOND
        while moment <= upto:
            if fires(self.settings.cron, moment):
                found.append(moment)
            moment += SECOND
        return found

    def next_slot(self, now: datetime) -> datetime | None:
        """The first slot after `now` and after the cursor (None when disabled)."""
        if not self.settings.enabled:
            return None
        start = max(now, self.cursor())
        return self.slots(start, start + LONGEST_GAP)[0]

    def due(self, now: datetime, bound: int) -> list[datetime]:
        """The slots one scheduler pass at `now` fires, ascending."""
        if not self.settings.enabled:
            return []
        recent = self.slots(self.cursor(), now)[-bound:]
        on_time = [slot for slot in recent if now - slot <= ON_TIME]
        late = [slot for slot in recent if now - slot > ON_TIME]
        if self.settings.catch_up is CatchUp.ALL:
            return recent
        if self.settings.catch_up is CatchUp.LATEST and not on_time:
            return late[-1:]
        return on_time

    def stored(self, now: datetime) -> Schedule:
        """What `schedules()` must return for it at `now`."""
        s = self.settings
        return Schedule(
            name=self.name,
            queue=s.queue,
            cron=s.cron,
            payload=s.payload,
            timezone="UTC",
            priority=s.priority,
            max_attempts=s.max_attempts,
            group=s.group,
            catch_up=s.catch_up,
            enabled=s.enabled,
            version=self.version,
            set_at=self.set_at,
            last_slot=self.last_slot,
            last_item_id=self.last_item_id,
            next_slot=self.next_slot(now),
        )
