"""The scheduler loop: fires the store's schedules, one slot at a time, from any number of
processes (every `workclaim worker` runs one unless `--no-scheduler`; `workclaim scheduler` runs
one alone; `workclaim serve --scheduler` runs one in the service).

No leader: each pass reads every schedule, works out its due slots by the store's clock
(`workclaim.schedules.due_slots`) and offers each to the store (`Queue.fire_slot`), which accepts
a slot once and refuses every later offer. Between passes it sleeps until the earliest next
slot, at most `max_sleep`, and a wake-up from the store (a schedule changed, or any write)
starts a pass early, at most one per `min_interval`. It runs in a thread of its own and never
touches the claim path.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Self

from workclaim.config import Settings
from workclaim.errors import BackendError, StorageFailed
from workclaim.models import Schedule
from workclaim.queue import Queue
from workclaim.schedules import CATCH_UP_BOUND, due_slots, next_slot

log = logging.getLogger("workclaim.scheduler")

MAX_SLEEP_SECONDS = 30.0
MIN_INTERVAL_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


class Scheduler:
    """Fires the schedules of `queue`'s store. `clock`: the store clock to judge slots by
    (default the store's own; tests inject one); `bound`: catch_up="all"'s most slots per pass."""

    def __init__(
        self,
        queue: Queue,
        *,
        clock: Callable[[], datetime] | None = None,
        bound: int = CATCH_UP_BOUND,
        max_sleep: float = MAX_SLEEP_SECONDS,
        min_interval: float = MIN_INTERVAL_SECONDS,
    ) -> None:
        self.queue = queue
        self.clock = clock
        self.bound = bound
        self.max_sleep = max_sleep
        self.min_interval = min_interval
        self.enqueued = 0  # items this scheduler enqueued (the others' writes are not counted)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> datetime:
        """The clock slots are judged by."""
        return self.clock() if self.clock is not None else self.queue.backend.store_now()

    def tick(self) -> datetime | None:
        """One pass: fire every due slot of every schedule; returns the earliest next slot
        (None: no enabled schedule)."""
        now = self.now()
        given = now if self.clock is not None else None
        earliest: datetime | None = None
        for schedule in self.queue.backend.schedules():
            try:
                self._fire_due(schedule, now, given)
                upcoming = next_slot(schedule, now)
            except BackendError:
                raise  # the store failed: `run` retries the whole pass
            except Exception:
                # This process cannot fire it (a payload over its cap, a time zone its tzdata
                # lacks): the others must still fire, and the thread must not end.
                log.exception("schedule %s: not fired this pass", schedule.name)
                continue
            if upcoming is not None and (earliest is None or upcoming < earliest):
                earliest = upcoming
        return earliest

    def _fire_due(self, schedule: Schedule, now: datetime, given: datetime | None) -> None:
        due = due_slots(schedule, now, bound=self.bound)
        if due.missed:
            log.warning(
                "schedule %s: slots came while no scheduler ran; catch_up=%s enqueues %d due "
                "slot(s) and leaves out %s%d",
                schedule.name,
                schedule.catch_up.value,
                len(due.slots),
                "at least " if due.partial else "",
                due.skipped,
            )
        for slot in due.slots:
            item_id = self.queue.fire_slot(schedule, slot, now=given)
            if item_id is None:
                return  # another scheduler took it (and the rest), or the schedule changed
            self.enqueued += 1

    def run(self) -> None:
        """Pass after pass until `stop()`; store errors are logged and retried with backoff,
        a failed disk (`StorageFailed`) ends the loop."""
        wakeup = self.queue.backend.wakeup()
        failures = 0
        while not self._stop.is_set():
            generation = wakeup.generation()
            started = time.monotonic()
            try:
                earliest = self.tick()
                failures = 0
            except StorageFailed:
                log.exception("scheduler stopped: the store's disk failed")
                raise
            except BackendError as exc:
                failures += 1
                pause = min(RETRY_MAX_SECONDS, 0.5 * 2**failures)
                log.warning("scheduler: the store failed (%s); next pass in %.1f s", exc, pause)
                self._stop.wait(pause)
                continue
            sleep = self.max_sleep
            if earliest is not None:
                sleep = min(sleep, max(0.0, (earliest - self.now()).total_seconds()))
            woken = wakeup.wait(generation, sleep) if sleep > 0 else False
            if woken:  # a wake-up: pass again, but not more often than min_interval
                self._stop.wait(max(0.0, self.min_interval - (time.monotonic() - started)))

    def start(self) -> threading.Thread:
        """Run the loop in a daemon thread of its own; returns it."""
        self._thread = threading.Thread(
            target=self._run_logged, name="workclaim-scheduler", daemon=True
        )
        self._thread.start()
        return self._thread

    def is_alive(self) -> bool:
        """Whether its thread runs (False once stopped, or ended by a failed disk)."""
        return self._thread is not None and self._thread.is_alive()

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception:
            log.exception("scheduler thread ended")

    def __enter__(self) -> Self:
        """`with Scheduler(queue):` runs it in its thread for the block (a worker, a service)."""
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the loop (at its next wake) and wait for the thread."""
        self._stop.set()
        self.queue.backend.wakeup().notify()
        if self._thread is not None:
            self._thread.join(timeout)
        log.info("scheduler stopped: %d item(s) enqueued", self.enqueued)


@contextlib.contextmanager
def scheduler_on(url: str, settings: Settings | None = None) -> Iterator[Scheduler]:
    """A scheduler on a `Queue` of its own for `url`, running in its thread for the block and
    closed after it (`workclaim scheduler`, `workclaim serve --scheduler`)."""
    queue = Queue(url, settings=settings)
    try:
        with Scheduler(queue) as scheduler:
            yield scheduler
    finally:
        queue.close()
