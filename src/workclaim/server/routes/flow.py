"""The flow-control routes (`admin` scope): a queue's policy, pausing and resuming it, and its
busiest groups' live leases (docs/contract.md, "Flow control").

A policy is stored in the store, so these change what every process claiming from the queue may
take, wherever it runs; the answers are the policy as stored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from workclaim.server.deps import Caller, Now, QueuePath, St, require_admin
from workclaim.server.openapi import COMMON
from workclaim.server.schemas import GroupLeasesOut, GroupsOut, PolicyIn, PolicyOut
from workclaim.validation import MAX_BATCH

router = APIRouter(tags=["admin"])


@router.get("/queues/{queue}/policy", response_model=PolicyOut, responses=COMMON)
async def get_policy(queue: QueuePath, st: St, caller: Caller) -> PolicyOut:
    """The queue's policy: no limits and not paused for a queue never given one (admin)."""
    require_admin(caller)
    return PolicyOut.of(await st.queue.policy(queue))


@router.put("/queues/{queue}/policy", response_model=PolicyOut, responses=COMMON)
async def put_policy(queue: QueuePath, body: PolicyIn, st: St, caller: Caller) -> PolicyOut:
    """Replace the queue's four limits (one left out or null is lifted); the paused flag is
    kept. Leases beyond a lowered limit run on; waiting claims wake (admin)."""
    require_admin(caller)
    policy = await st.queue.set_policy(
        queue,
        concurrency=body.concurrency,
        group_concurrency=body.group_concurrency,
        rate=None if body.rate is None else body.rate.rate(),
        group_rate=None if body.group_rate is None else body.group_rate.rate(),
    )
    return PolicyOut.of(policy)


@router.post("/queues/{queue}/pause", response_model=PolicyOut, responses=COMMON)
async def pause(queue: QueuePath, st: St, caller: Caller) -> PolicyOut:
    """Pause the queue: once this answers, no claim that starts afterwards takes its items;
    leases already given run on and may end as usual. Enqueueing still works (admin)."""
    require_admin(caller)
    return PolicyOut.of(await st.queue.pause(queue))


@router.post("/queues/{queue}/resume", response_model=PolicyOut, responses=COMMON)
async def resume(queue: QueuePath, st: St, caller: Caller) -> PolicyOut:
    """Let claims take the queue's items again; waiting claims wake (admin)."""
    require_admin(caller)
    return PolicyOut.of(await st.queue.resume(queue))


@router.get("/queues/{queue}/groups", response_model=GroupsOut, responses=COMMON)
async def busiest_groups(
    queue: QueuePath,
    st: St,
    caller: Caller,
    now: Now,
    limit: Annotated[int, Query(ge=1, le=MAX_BATCH, description="Groups to list.")] = 10,
) -> GroupsOut:
    """The `limit` groups of the queue holding the most live leases now (most first, ties by
    name, the default group, null, first); groups holding none are left out (admin)."""
    require_admin(caller)
    rows = await st.queue.live_leases_by_group(queue, limit=limit, now=now)
    return GroupsOut(queue=queue, groups=[GroupLeasesOut.of(x) for x in rows])
