"""One scheduler OS process for the schedule race (tests/integration/test_schedule_race.py).

It runs the real `Scheduler` loop on a store, with the store clock injected: `FileClock` reads
the instant the test driver last wrote to a file, so the driver moves time for every scheduler
at once and nothing sleeps through a slot. Every slot this process is told it won (`fire_slot`
returned an id) is appended, flushed, to a record file of its own: the test checks those claims
against the store. The test ends it with SIGKILL (at any point: that is the point).

    python -m tests.support.schedule_runner STORE_URL CLOCK_FILE RECORD_FILE
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import IO

from workclaim import Queue
from workclaim.models import Schedule
from workclaim.scheduler import Scheduler


class FileClock:
    """The store clock as the driver last set it: an ISO instant in a file, replaced whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, moment: datetime) -> None:
        """Write `moment` (driver side): a new file renamed over the old, never half written."""
        partial = self.path.with_suffix(".tmp")
        partial.write_text(moment.isoformat())
        os.replace(partial, self.path)

    def now(self) -> datetime:
        """The instant last written (scheduler side)."""
        return datetime.fromisoformat(self.path.read_text())


class RecordingQueue(Queue):
    """A `Queue` that appends `<slot ISO> <item id>` for every slot the store gave it."""

    record: IO[str]

    def fire_slot(
        self, schedule: Schedule, slot: datetime, *, now: datetime | None = None
    ) -> int | None:
        item_id = super().fire_slot(schedule, slot, now=now)
        if item_id is not None:
            self.record.write(f"{slot.isoformat()} {item_id}\n")
            self.record.flush()
        return item_id


def main(url: str, clock_file: str, record_file: str) -> None:
    """Run a scheduler until killed. It passes every 50 ms (the injected clock wakes no one),
    and no more often when the store's wake-ups (every fire) call: five schedulers woken by
    every slot would spend the run refusing each other."""
    queue = RecordingQueue(url)
    with open(record_file, "a", encoding="utf-8") as record:
        queue.record = record
        clock = FileClock(Path(clock_file))
        Scheduler(queue, clock=clock.now, max_sleep=0.05, min_interval=0.05).run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
