"""The dashboard: its data endpoint, its pages, and the headers that keep it safe.

The pages are a static shell plus one script (`static/`); the script asks `GET /dashboard` for
the data with the bearer token from `sessionStorage` and draws it with `textContent` (user data
is never parsed as HTML). The server therefore never renders store data into HTML, and the page
loads without a token. A strict Content-Security-Policy allows only the service's own script and
stylesheet. Admin actions are JSON requests with an `Authorization` header, which a cross-site
form cannot send; `guards.BrowserGuard` also refuses requests that a browser marks as cross-site
(which matters under `--no-auth`, where no token is needed).
"""

from __future__ import annotations

import asyncio
import html
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from workclaim.errors import ItemNotFound
from workclaim.models import EventKind, Item, Schedule, Status
from workclaim.queue import AsyncQueue
from workclaim.server import problems
from workclaim.server.activity import LATENCY_WINDOW, Activity, Latency
from workclaim.server.deps import Caller, Now, St, require_admin
from workclaim.server.openapi import COMMON
from workclaim.server.schemas import (
    DashboardOut,
    DeadRowOut,
    GroupLeasesOut,
    LatencyOut,
    LeaseRowOut,
    PolicyOut,
    QueuePanelOut,
    RatePoint,
    ScheduleRowOut,
    StatsOut,
)
from workclaim.validation import MAX_ID

PANEL_QUEUES = 50  # queues shown; `truncated` says when there are more
LEASE_ROWS = 20  # live leases listed per queue (page further with /queues/{q}/items)
DEAD_ROWS = 10  # dead items listed per queue, oldest id first
GROUP_ROWS = 10  # the busiest groups listed per queue (more with /queues/{q}/groups)
SCHEDULE_ROWS = 50  # schedules shown, by name (all of them with GET /schedules)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

router = APIRouter()


def _asset(name: str) -> bytes:
    return resources.files("workclaim.server").joinpath("static", name).read_bytes()


def _page(request: Request) -> Response:
    root = html.escape(str(request.scope.get("root_path", "")).rstrip("/"), quote=True)
    text = _asset("index.html").decode("utf-8").replace("{root}", root)
    return Response(text, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    """The dashboard (the data comes from `GET /dashboard`)."""
    return _page(request)


@router.get("/ui/items/{item_id}", include_in_schema=False)
async def item_page(request: Request, item_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
    """An item and its attempt history (the data comes from `/items/{id}` and its history)."""
    return _page(request)


@router.get("/ui/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    """The dashboard's script and stylesheet."""
    media_type = _STATIC.get(name)
    if media_type is None:
        return problems.problem_response("not-found", "no such file")
    return Response(_asset(name), media_type=media_type, headers=PAGE_HEADERS)


def _latency(summary: Latency) -> LatencyOut:
    return LatencyOut(
        count=summary.count, p50=summary.p50, p95=summary.p95, window_seconds=LATENCY_WINDOW
    )


async def _claimed_at(queue: AsyncQueue, item: Item) -> datetime | None:
    """When the item's current attempt was claimed, from its history (None if none is kept)."""
    start = 0
    while True:  # newest first: only the heartbeats since the claim stand before it
        try:
            events = await queue.history(item.id, limit=100, start=start, newest_first=True)
        except ItemNotFound:
            return None
        for event in events:
            if event.kind == EventKind.CLAIMED:
                return event.at
        if len(events) < 100:
            return None
        start += len(events)


async def _panel(
    queue: AsyncQueue, activity: Activity, name: str, now: datetime | None
) -> QueuePanelOut:
    stats = await queue.stats(name, now=now)
    held = await queue.items(name, Status.CLAIMED, limit=LEASE_ROWS) if stats.claimed else []
    dead = await queue.items(name, Status.DEAD, limit=DEAD_ROWS) if stats.dead else []
    policy = await queue.policy(name)
    groups = (
        await queue.live_leases_by_group(name, limit=GROUP_ROWS, now=now) if stats.claimed else []
    )
    started = await asyncio.gather(*(_claimed_at(queue, x) for x in held))
    clock = now or datetime.now(UTC)
    window = activity.claim_latency.get(name)
    fused = activity.fused_latency.get(name)
    empty = Latency(0, None, None)
    return QueuePanelOut(
        name=name,
        stats=StatsOut.of(stats),
        series=[
            RatePoint(at=p.at, claimed=p.claimed, completed=p.completed)
            for p in activity.series.get(name, ())
        ],
        claim_latency=_latency(window.summary() if window else empty),
        fused_latency=_latency(fused.summary() if fused else empty),
        leases=[
            LeaseRowOut(
                id=x.id,
                worker=x.worker,
                attempt=x.attempts,
                max_attempts=x.max_attempts,
                expires_at=x.expires_at,
                claimed_at=at,
                updated_at=x.updated_at,
                overdue=x.expires_at is not None and x.expires_at <= clock,
                group=x.group,
            )
            for x, at in zip(held, started, strict=True)
        ],
        dead=[
            DeadRowOut(
                id=x.id,
                attempts=x.attempts,
                max_attempts=x.max_attempts,
                last_error=x.last_error,
                updated_at=x.updated_at,
                group=x.group,
            )
            for x in dead
        ],
        policy=PolicyOut.of(policy),
        groups=[GroupLeasesOut.of(x) for x in groups],
    )


async def _last_status(queue: AsyncQueue, schedule: Schedule) -> Status | None:
    """The status of the schedule's last item (None without one, or once it was purged)."""
    if schedule.last_item_id is None:
        return None
    try:
        return (await queue.get(schedule.last_item_id)).status
    except ItemNotFound:
        return None


async def _schedule_rows(
    queue: AsyncQueue, now: datetime | None
) -> tuple[list[ScheduleRowOut], bool]:
    """The first `SCHEDULE_ROWS` schedules with their last item's status; and whether there
    were more."""
    found = await queue.schedules(now=now)
    shown = found[:SCHEDULE_ROWS]
    statuses = await asyncio.gather(*(_last_status(queue, s) for s in shown))
    rows = [
        ScheduleRowOut.of(s).model_copy(update={"last_status": status})
        for s, status in zip(shown, statuses, strict=True)
    ]
    return rows, len(found) > SCHEDULE_ROWS


@router.get("/dashboard", response_model=DashboardOut, responses=COMMON, tags=["admin"])
async def dashboard(st: St, caller: Caller, now: Now) -> DashboardOut:
    """Per queue (the first 50 by name): counts by status and expired leases, claimed and
    completed items/s over the last minutes, this server's claim latency p50/p95, up to 20 live
    leases, up to 10 dead items, the flow-control policy (limits, paused) and the up to 10
    groups holding the most live leases (admin); then the first 50 schedules by name, each
    with its last item's status. 503 while the database is unreachable."""
    require_admin(caller)
    names = await st.queue.queues()
    panels = [await _panel(st.queue, st.activity, n, now) for n in names[:PANEL_QUEUES]]
    schedules, more = await _schedule_rows(st.queue, now)
    return DashboardOut(
        now=now or datetime.now(UTC),
        sample_seconds=st.activity.every,
        queues=panels,
        truncated=len(names) > PANEL_QUEUES,
        schedules=schedules,
        schedules_truncated=more,
    )
