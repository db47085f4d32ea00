"""The admin routes (`admin` scope): every queue's counts, a queue's stats, purge, requeue.

The dashboard's data (`GET /dashboard`, also admin) is in `server/dashboard.py` beside its page.
"""

from __future__ import annotations

from fastapi import APIRouter

from workclaim.models import Status
from workclaim.server.deps import Caller, IdPath, Now, QueuePath, St, require_admin
from workclaim.server.openapi import COMMON, ITEM, problem
from workclaim.server.schemas import OutcomeOut, PurgeIn, PurgeOut, QueuesOut, RequeueIn, StatsOut

router = APIRouter(tags=["admin"])


@router.get("/queues", response_model=QueuesOut, responses=COMMON)
async def list_queues(st: St, caller: Caller, now: Now) -> QueuesOut:
    """Every queue that holds at least one item, sorted, with its counts and expired leases
    (admin)."""
    require_admin(caller)
    names = await st.queue.queues()
    return QueuesOut(queues=[StatsOut.of(await st.queue.stats(n, now=now)) for n in names])


@router.post(
    "/items/{item_id}/requeue",
    response_model=OutcomeOut,
    responses=ITEM | {409: problem("The item is not dead")},
)
async def requeue_item(
    item_id: IdPath, st: St, caller: Caller, now: Now, body: RequeueIn | None = None
) -> OutcomeOut:
    """Move a dead item back to queued with fresh attempts (admin)."""
    require_admin(caller)
    max_attempts = None if body is None else body.max_attempts
    await st.queue.requeue(item_id, max_attempts=max_attempts, now=now)
    return OutcomeOut(id=item_id, status=Status.QUEUED)


@router.get("/queues/{queue}/stats", response_model=StatsOut, responses=COMMON)
async def queue_stats(queue: QueuePath, st: St, caller: Caller, now: Now) -> StatsOut:
    """Counts per status plus expired leases; zeros for a queue never used (admin)."""
    require_admin(caller)
    return StatsOut.of(await st.queue.stats(queue, now=now))


@router.post("/queues/{queue}/purge", response_model=PurgeOut, responses=COMMON)
async def purge(queue: QueuePath, body: PurgeIn, st: St, caller: Caller, now: Now) -> PurgeOut:
    """Delete the queue's finished items that finished more than `older_than` seconds ago."""
    require_admin(caller)
    return PurgeOut(deleted=await st.queue.purge(queue, older_than=body.older_than, now=now))
