"""The producers' routes: enqueue, then read or cancel the items of their queues.

Reading needs the `enqueue` or `work` scope on the item's queue; an item outside the caller's
queues answers 404, as if it did not exist.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from workclaim.errors import ItemNotFound, ValidationError
from workclaim.models import HistoryEvent, Item, Status
from workclaim.server.auth import Principal
from workclaim.server.deps import (
    Caller,
    IdPath,
    Now,
    QueuePath,
    St,
    State,
    require_enqueue,
    require_read,
)
from workclaim.server.openapi import COMMON, ITEM, problem
from workclaim.server.problems import Problem
from workclaim.server.schemas import (
    EnqueueIn,
    EnqueueOut,
    HistoryEventOut,
    HistoryOut,
    ItemOut,
    ItemsOut,
    OutcomeOut,
)
from workclaim.validation import MAX_BATCH, MAX_ID

router = APIRouter(tags=["producer"])


@router.post("/queues/{queue}/items", response_model=EnqueueOut, status_code=201, responses=COMMON)
async def enqueue(
    queue: QueuePath, body: EnqueueIn, st: St, caller: Caller, now: Now
) -> EnqueueOut:
    """Add one item (`payload`) or a batch (`payloads`, atomically); ids in input order."""
    require_enqueue(caller, queue)
    given = body.model_fields_set
    options: dict[str, Any] = {
        "priority": body.priority,
        "delay": body.delay,
        "run_at": body.run_at,
        "max_attempts": body.max_attempts,
        "group": body.group,
        "now": now,
    }
    if ("payload" in given) == ("payloads" in given and body.payloads is not None):
        raise ValidationError("give exactly one of `payload` (one item) or `payloads` (a batch)")
    if "payload" in given:
        item_id = await st.queue.enqueue(queue, body.payload, dedupe_key=body.dedupe_key, **options)
        ids = [item_id]
    else:
        assert body.payloads is not None
        if body.dedupe_key is not None:
            raise ValidationError("dedupe_key applies to one item: send `payload`, not `payloads`")
        if len(body.payloads) > st.config.max_batch:
            raise ValidationError(f"a batch holds at most {st.config.max_batch} payloads")
        ids = await st.queue.enqueue_many(queue, body.payloads, **options)
    st.metrics.saw_queue(queue)
    st.metrics.enqueued.labels(queue=queue).inc(len(ids))
    return EnqueueOut(ids=ids)


async def _visible_item(st: State, caller: Principal, item_id: int) -> Item:
    """The item, or 404 when it is not in one of the caller's queues."""
    item = await st.queue.get(item_id)
    if not (caller.may_enqueue(item.queue) or caller.may_work(item.queue)):
        raise ItemNotFound(item_id)  # do not reveal items outside the caller's queues
    return item


@router.get("/items/{item_id}", response_model=ItemOut, responses=ITEM)
async def get_item(item_id: IdPath, st: St, caller: Caller) -> ItemOut:
    """The item as stored (never its lease token)."""
    return ItemOut.of(await _visible_item(st, caller, item_id))


@router.get("/items/{item_id}/history", response_model=HistoryOut, responses=ITEM)
async def item_history(
    item_id: IdPath,
    st: St,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_BATCH, description="Page size.")] = 100,
    start: Annotated[
        int, Query(ge=0, le=MAX_ID, description="Position of the page's first event (0: first).")
    ] = 0,
    order: Annotated[
        Literal["oldest", "newest"], Query(description="Oldest first, or newest first.")
    ] = "oldest",
) -> HistoryOut:
    """One page of the item's attempt history; empty when its queue keeps none. Follow
    `next_start` for the next page. A token shows only to its holder and to admins."""
    item = await _visible_item(st, caller, item_id)
    events = await st.queue.history(
        item_id, limit=limit, start=start, newest_first=order == "newest"
    )
    return HistoryOut(
        item_id=item_id,
        events=[HistoryEventOut.of(_shown_to(caller, item.queue, e)) for e in events],
        next_start=start + len(events) if len(events) == limit else None,
    )


def _shown_to(caller: Principal, queue: str, event: HistoryEvent) -> HistoryEvent:
    """The event as `caller` may see it: a lease token is shown to admins and to the worker
    that held it (still with `work` on the queue), and to nobody else, like a lease itself."""
    holder = event.worker == caller.identity and caller.may_work(queue)
    if event.token is None or caller.admin or holder:
        return event
    return replace(event, token=None)


@router.get("/queues/{queue}/items", response_model=ItemsOut, responses=COMMON)
async def list_items(
    queue: QueuePath,
    st: St,
    caller: Caller,
    status: Annotated[Status, Query(description="The status to list.")] = Status.QUEUED,
    limit: Annotated[int, Query(ge=1, le=MAX_BATCH, description="Page size.")] = 100,
    after: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only ids above this (the last seen).")
    ] = None,
) -> ItemsOut:
    """One page of the queue's items in `status`, by ascending id (`enqueue` or `work` scope on
    the queue). Follow `next_after` for the next page."""
    require_read(caller, queue)
    found, more = await _page(st, queue, status, limit, after)
    next_after = found[-1].id if more else None
    return ItemsOut(items=[ItemOut.of(x) for x in found], next_after=next_after)


# A listing reads its rows in chunks, the first this small, so that a page of big payloads
# stops at the byte budget without holding many more rows than it returns.
_FIRST_CHUNK = 10


async def _page(
    st: State, queue: str, status: Status, limit: int, after: int | None
) -> tuple[list[Item], bool]:
    """Up to `limit` items after `after`, stopping before the one whose payload and result
    would take the page past `max_page_bytes` (one item at least); and whether more may
    follow."""
    budget = st.config.max_page_bytes
    found: list[Item] = []
    used = 0
    chunk = min(limit, _FIRST_CHUNK)
    while True:
        rows = await st.queue.items(queue, status, limit=chunk, after=after)
        for item in rows:
            size = _encoded_size(item)
            if found and used + size > budget:
                return found, True
            found.append(item)
            used += size
        if len(rows) < chunk or len(found) == limit:
            return found, len(found) == limit
        after = rows[-1].id
        room = (budget - used) // max(used // len(found), 1) + 1
        chunk = max(1, min(limit - len(found), room))


def _encoded_size(item: Item) -> int:
    """About how many bytes an item's payload and result take in an answer."""
    return sum(
        len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        for value in (item.payload, item.result)
    )


@router.delete(
    "/items/{item_id}",
    response_model=OutcomeOut,
    responses=ITEM | {409: problem("The item is not queued")},
)
async def cancel_item(item_id: IdPath, st: St, caller: Caller, now: Now) -> OutcomeOut:
    """Cancel a queued item (409 invalid-state when it is claimed or finished)."""
    item = await _visible_item(st, caller, item_id)
    if not caller.may_enqueue(item.queue):
        raise Problem("forbidden", "cancelling needs the `enqueue` scope on the item's queue")
    await st.queue.cancel(item_id, now=now)
    return OutcomeOut(id=item_id, status=Status.CANCELLED)
