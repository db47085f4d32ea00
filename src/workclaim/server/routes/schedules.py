"""The schedule routes (`admin` scope): list, read, declare, remove and run a schedule now
(docs/contract.md, "Schedules").

A schedule is stored in the store, so what these change is what every scheduler process fires,
wherever it runs; the answers are the schedule as stored, with its next slot computed at the
store's time (or the test clock's).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from workclaim.server.deps import Caller, Now, SchedulePath, St, require_admin
from workclaim.server.openapi import COMMON, SCHEDULE
from workclaim.server.problems import Problem
from workclaim.server.schemas import ScheduleIn, ScheduleOut, ScheduleRunOut, SchedulesOut

router = APIRouter(tags=["admin"])


@router.get("/schedules", response_model=SchedulesOut, responses=COMMON)
async def list_schedules(st: St, caller: Caller, now: Now) -> SchedulesOut:
    """Every schedule, by name, each with its next slot and its last slot and item (admin)."""
    require_admin(caller)
    return SchedulesOut(schedules=[ScheduleOut.of(s) for s in await st.queue.schedules(now=now)])


@router.get("/schedules/{name}", response_model=ScheduleOut, responses=SCHEDULE)
async def get_schedule(name: SchedulePath, st: St, caller: Caller, now: Now) -> ScheduleOut:
    """The schedule with its next slot; 404 `schedule-not-found` if there is none (admin)."""
    require_admin(caller)
    return ScheduleOut.of(await st.queue.get_schedule(name, now=now))


@router.put("/schedules/{name}", response_model=ScheduleOut, responses=COMMON)
async def put_schedule(
    name: SchedulePath, body: ScheduleIn, st: St, caller: Caller, now: Now
) -> ScheduleOut:
    """Create or replace the schedule. A change takes effect from the next slot (the slots
    before it are never enqueued); the same settings again change nothing. An invalid cron
    expression or time zone is a 422 and stores nothing (admin)."""
    require_admin(caller)
    stored = await st.queue.schedule(
        name,
        body.queue,
        body.cron,
        payload=body.payload,
        timezone=body.timezone,
        priority=body.priority,
        max_attempts=body.max_attempts,
        group=body.group,
        catch_up=body.catch_up.value,
        enabled=body.enabled,
        now=now,
    )
    return ScheduleOut.of(stored)


@router.delete(
    "/schedules/{name}",
    status_code=204,
    response_class=Response,
    responses=SCHEDULE | {204: {"description": "Removed (its items stay)"}},
)
async def delete_schedule(name: SchedulePath, st: St, caller: Caller) -> Response:
    """Remove the schedule; the items it enqueued stay. 404 `schedule-not-found` if there was
    none (admin)."""
    require_admin(caller)
    if not await st.queue.unschedule(name):
        raise Problem("schedule-not-found", f"no schedule named {name!r}")
    return Response(status_code=204)


@router.post(
    "/schedules/{name}/run", status_code=201, response_model=ScheduleRunOut, responses=SCHEDULE
)
async def run_schedule(name: SchedulePath, st: St, caller: Caller, now: Now) -> ScheduleRunOut:
    """Enqueue the schedule's item once now, outside its slots (which are not changed); answers
    the new item's id. Not a slot: no dedupe key, and `last_slot` stays (admin)."""
    require_admin(caller)
    return ScheduleRunOut(name=name, id=await st.queue.run_schedule_now(name, now=now))
