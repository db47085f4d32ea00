"""The endpoints. Each is thin: check scope, call `AsyncQueue`, shape the answer.

The worker a lease belongs to is the caller's identity from its bearer token, never a field of
the request: lease-ending calls build `Lease(..., worker=identity)`, so the store's fence refuses
another worker's lease with 409 even though tokens are sequential and guessable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from workclaim._time import from_micros
from workclaim.errors import ItemNotFound, LeaseLost, ValidationError, WorkclaimError
from workclaim.models import HistoryEvent, Item, Lease, Status
from workclaim.queue import AsyncQueue
from workclaim.server.activity import Activity
from workclaim.server.auth import ANONYMOUS, Principal, TokensUnavailable
from workclaim.server.config import ServerConfig
from workclaim.server.limits import LongPollLimiter
from workclaim.server.longpoll import LongPolls
from workclaim.server.metrics import Metrics
from workclaim.server.problems import MEDIA_TYPE, Problem
from workclaim.server.schemas import (
    NAME_REGEX,
    ClaimIn,
    ClaimOut,
    CompleteAndClaimIn,
    CompleteAndClaimOut,
    CompleteIn,
    EnqueueIn,
    EnqueueOut,
    FailIn,
    HealthOut,
    HeartbeatIn,
    HeartbeatOut,
    HistoryEventOut,
    HistoryOut,
    ItemOut,
    ItemsOut,
    LeaseKey,
    LeaseOut,
    LeaseRef,
    OutcomeOut,
    ProblemOut,
    PurgeIn,
    PurgeOut,
    QueuesOut,
    ReleaseIn,
    RequeueIn,
    StatsOut,
)
from workclaim.validation import MAX_BATCH, MAX_ID, check_queues
from workclaim.wire import CLOCK_HEADER

log = logging.getLogger("workclaim.server")


@dataclass
class State:
    """What every request needs: the queue, the config, metrics and the long-poll limiter."""

    queue: AsyncQueue
    config: ServerConfig
    metrics: Metrics
    longpolls: LongPollLimiter
    waiting: LongPolls
    activity: Activity


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": ProblemOut.model_json_schema()}},
    }


_COMMON: dict[int | str, dict[str, Any]] = {
    400: _problem("Malformed request (not JSON, bad header)"),
    401: _problem("No bearer token, or an unknown one"),
    403: _problem("The token's scopes do not allow this"),
    413: _problem("Body or payload over the cap"),
    422: _problem("Invalid arguments"),
    429: _problem("Too many requests (Retry-After says when to retry)"),
    503: _problem("The database is unavailable (Retry-After says when to retry)"),
}
_LEASE = _COMMON | {409: _problem("Lease lost: stale, expired or another worker's")}
_ITEM = _COMMON | {404: _problem("No such item (or not visible to this token)")}

bearer = HTTPBearer(auto_error=False, description="A token from `workclaim token create`.")
router = APIRouter()


def _state(request: Request) -> State:
    st: State = request.app.state.workclaim
    return st


# Dependencies are `async def` so that they run on the event loop: FastAPI would run a plain
# `def` dependency on the framework's small default thread pool, one thread hop per request each.
async def state(request: Request) -> State:
    """The app's state."""
    return _state(request)


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, from its bearer token (401 without a valid one)."""
    st = _state(request)
    if st.config.no_auth:
        return ANONYMOUS
    challenge = {"WWW-Authenticate": 'Bearer realm="workclaim"'}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem("unauthorized", "send Authorization: Bearer <token>", headers=challenge)
    assert st.config.tokens is not None
    try:
        found = st.config.tokens.lookup(credentials.credentials)
    except TokensUnavailable as exc:
        detail = "the server cannot use its tokens file; see its log"
        raise Problem("service-unavailable", detail, headers={"Retry-After": "5"}) from exc
    if found is None:
        raise Problem("unauthorized", "the bearer token is not valid", headers=challenge)
    if found.expired():
        raise Problem("unauthorized", "the bearer token has expired", headers=challenge)
    return found


async def clock(
    request: Request,
    x_workclaim_now: Annotated[
        str | None,
        Header(
            description="TEST ONLY, honoured only by a server started with the clock override: "
            "the store time to use for this call (ISO 8601 with offset)."
        ),
    ] = None,
) -> datetime | None:
    """The injected `now` of a test server, or None (the store's clock)."""
    if x_workclaim_now is None or not _state(request).config.allow_clock_override:
        return None
    try:
        now = datetime.fromisoformat(x_workclaim_now)
    except ValueError as exc:
        raise Problem("bad-request", f"{CLOCK_HEADER} is not an ISO 8601 datetime") from exc
    if now.tzinfo is None:
        raise Problem("bad-request", f"{CLOCK_HEADER} needs a UTC offset")
    return now


Caller = Annotated[Principal, Depends(principal)]
Now = Annotated[datetime | None, Depends(clock)]
St = Annotated[State, Depends(state)]
QueuePath = Annotated[str, Path(pattern=NAME_REGEX, max_length=128, description="Queue name.")]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Item id.")]


def _worker_for_claim(caller: Principal, st: State, requested: str | None) -> str:
    if st.config.no_auth:
        return requested or caller.identity
    if requested is not None and requested != caller.identity:
        raise Problem(
            "forbidden",
            "the worker is the token's identity; omit `worker` or send the same name",
        )
    return caller.identity


def _check_caps(cfg: ServerConfig, *, limit: int | None = None, lease: float | None = None) -> None:
    """This server's caps on a claim's `max` and on a lease's length (at a claim, or a
    heartbeat's `extend`), which may be lower than the library's."""
    if limit is not None and limit > cfg.max_batch:
        raise ValidationError(f"max must be at most {cfg.max_batch} on this server")
    if lease is not None and lease > cfg.max_lease:
        raise ValidationError(f"a lease may last at most {cfg.max_lease} seconds on this server")


def _worker_for_lease(caller: Principal, st: State, ref: LeaseRef) -> str:
    if st.config.no_auth:
        return ref.worker or caller.identity
    if not caller.may_work():
        raise Problem("forbidden", "this token has no `work` scope")
    if ref.worker is not None and ref.worker != caller.identity:
        raise LeaseLost(ref.id, ref.token, "the lease belongs to another worker")
    return caller.identity


def _lease(ref: LeaseRef, worker: str, attempt: int = 1) -> Lease:
    """A lease naming the item, token and worker; the store fences on exactly these."""
    return Lease(
        id=ref.id,
        queue="",
        payload=None,
        token=ref.token,
        attempt=ref.attempt or attempt,
        max_attempts=0,
        expires_at=from_micros(0),
        worker=worker,
        lease_seconds=0.0,
    )


async def _claim(
    request: Request,
    st: State,
    caller: Principal,
    queues: list[str],
    *,
    limit: int,
    lease: float,
    wait: float,
    worker: str | None,
    now: datetime | None,
) -> Response:
    names = check_queues(queues)
    for name in names:
        if not caller.may_work(name):
            raise Problem("forbidden", f"this token may not claim from queue {name!r}")
    _check_caps(st.config, limit=limit, lease=lease)
    wait = min(wait, st.config.max_wait)
    who = _worker_for_claim(caller, st, worker)
    q = st.queue
    if wait > 0:
        with st.longpolls.slot(caller.identity):
            st.metrics.longpolls.inc()
            try:
                waiting = st.waiting.claim(
                    names, worker=who, lease=lease, limit=limit, wait=wait, now=now
                )
                got = await _unless_hung_up(request, waiting)
            finally:
                st.metrics.longpolls.dec()
        if got is None or (got and await request.is_disconnected()):
            if got:
                st.waiting.release(got)  # nobody to hand them to: give them straight back
            return Response(status_code=204)
        leases = got
    else:
        started = time.perf_counter()
        leases = await q.claim(names, worker=who, lease=lease, max=limit, now=now)
        took = time.perf_counter() - started
        st.metrics.claim_latency.observe(took)
        st.activity.claim_took(names, took)
    if not leases:
        return Response(status_code=204)
    answer = await _hand_over(st, leases, lambda: ClaimOut(leases=[LeaseOut.of(x) for x in leases]))
    _count_claimed(st, leases)
    return answer


async def _unless_hung_up(
    request: Request, waiting: Coroutine[Any, Any, list[Lease]]
) -> list[Lease] | None:
    """The leases of a waiting claim, or None as soon as the client hangs up: the claim is then
    cancelled (leases already handed to it go back), so its long-poll slot is free at once."""
    claim = asyncio.ensure_future(waiting)
    watch = asyncio.ensure_future(_hang_up(request))
    try:
        await asyncio.wait((claim, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not claim.done():
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await claim
    return None if claim.cancelled() else claim.result()


async def _hang_up(request: Request) -> None:
    """Returns when the client disconnects (the body is already read, so the server's next
    message is `http.disconnect`)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _hand_over(st: State, leases: list[Lease], answer: Callable[[], BaseModel]) -> Response:
    """The JSON answer that carries new leases to the caller. If it cannot be encoded (an item
    stored before the depth limit, say), the leases are released (attempts given back) before
    the 500, so no item waits out a lease nobody received."""
    try:
        body = answer().model_dump_json()
    except (ValueError, RecursionError) as exc:
        log.error("%s encoding %d leases; releasing them", type(exc).__name__, len(leases))
        for lease in leases:
            with contextlib.suppress(WorkclaimError):
                await st.queue.release(lease)
        ids = ", ".join(str(x.id) for x in leases)
        raise Problem(
            "internal-error",
            f"the answer could not be encoded, so its leases were released (items {ids}); "
            "an item's payload may predate this server's limits",
        ) from None
    return Response(body, media_type="application/json")


def _count_claimed(st: State, leases: list[Lease]) -> None:
    for granted in leases:
        st.metrics.claims.labels(queue=granted.queue).inc()
        st.activity.claimed(granted.queue)


_CLAIM_RESPONSES = _COMMON | {
    200: {"description": "Leases, in claim order"},
    204: {"description": "Nothing claimable (within the wait)"},
}


@router.post(
    "/worker/claim",
    response_model=ClaimOut,
    responses=_CLAIM_RESPONSES,
    tags=["worker"],
    summary="Claim items (long-poll with wait)",
)
async def claim(body: ClaimIn, request: Request, st: St, caller: Caller, now: Now) -> Any:
    """Lease up to `max` items from the named queues in (priority, run_at, id) order; 204 when
    nothing is claimable within `wait` seconds. The safe form of `GET /worker/next`."""
    queues = list(body.queues or []) + ([body.queue] if body.queue else [])
    if not queues:
        raise ValidationError("give `queue` or `queues`")
    return await _claim(
        request,
        st,
        caller,
        queues,
        limit=body.max,
        lease=body.lease,
        wait=body.wait,
        worker=body.worker,
        now=now,
    )


@router.get(
    "/worker/next",
    response_model=ClaimOut,
    responses=_CLAIM_RESPONSES,
    tags=["worker"],
    summary="Claim items (GET form; prefer POST /worker/claim)",
)
async def claim_next(
    request: Request,
    st: St,
    caller: Caller,
    now: Now,
    queue: Annotated[list[Annotated[str, Query(pattern=NAME_REGEX)]], Query(min_length=1)],
    max: Annotated[int, Query(ge=1, le=1000)] = 1,
    lease: Annotated[float, Query(ge=0.01, le=604_800)] = 30.0,
    wait: Annotated[float, Query(ge=0, le=3_600)] = 0.0,
) -> Any:
    """The spike's endpoint, kept for compatibility. A GET may be repeated or prefetched by
    proxies and caches, and each repeat claims more items (held until their leases expire):
    prefer `POST /worker/claim`. Answers carry `Cache-Control: no-store`."""
    result = await _claim(
        request,
        st,
        caller,
        queue,
        limit=max,
        lease=lease,
        wait=wait,
        worker=None,
        now=now,
    )
    result.headers["Cache-Control"] = "no-store"
    return result


@contextlib.contextmanager
def _counting_lease_lost(st: State) -> Iterator[None]:
    """Count a `LeaseLost` in the metrics and let it through (it becomes a 409)."""
    try:
        yield
    except LeaseLost:
        st.metrics.lease_lost.inc()
        raise


@router.post("/worker/heartbeat", response_model=HeartbeatOut, responses=_LEASE, tags=["worker"])
async def heartbeat(body: HeartbeatIn, st: St, caller: Caller, now: Now) -> HeartbeatOut:
    """Extend the lease to now + `extend` (default: its own length); 409 if it is lost."""
    _check_caps(st.config, lease=body.extend)
    with _counting_lease_lost(st):
        lease = _lease(body, _worker_for_lease(caller, st, body))
        renewed = await st.queue.heartbeat(lease, extend=body.extend, now=now)
    return HeartbeatOut(id=renewed.id, token=renewed.token, expires_at=renewed.expires_at)


@router.post("/worker/complete", response_model=OutcomeOut, responses=_LEASE, tags=["worker"])
async def complete(body: CompleteIn, st: St, caller: Caller, now: Now) -> OutcomeOut:
    """Mark the item done. Repeating a successful complete is harmless."""
    with _counting_lease_lost(st):
        lease = _lease(body, _worker_for_lease(caller, st, body))
        await st.queue.complete(lease, result=body.result, now=now)
    st.metrics.completions.inc()
    return OutcomeOut(id=body.id, status=Status.DONE)


@router.post("/worker/release", response_model=OutcomeOut, responses=_LEASE, tags=["worker"])
async def release(body: ReleaseIn, st: St, caller: Caller, now: Now) -> OutcomeOut:
    """Give the item back (after `delay` seconds) without using up an attempt."""
    with _counting_lease_lost(st):
        lease = _lease(body, _worker_for_lease(caller, st, body))
        await st.queue.release(lease, delay=body.delay, now=now)
    st.metrics.releases.inc()
    return OutcomeOut(id=body.id, status=Status.QUEUED)


@router.post("/worker/fail", response_model=OutcomeOut, responses=_LEASE, tags=["worker"])
async def fail(body: FailIn, st: St, caller: Caller, now: Now) -> OutcomeOut:
    """Record a failure: queued again after a backoff while attempts remain, else dead."""
    with _counting_lease_lost(st):
        worker = _worker_for_lease(caller, st, body)
    attempt = body.attempt
    if attempt is None:
        try:
            attempt = (await st.queue.get(body.id)).attempts or 1
        except ItemNotFound:
            attempt = 1  # the fenced call below answers lease-lost
    lease = _lease(body, worker, attempt)
    with _counting_lease_lost(st):
        status = await st.queue.fail(lease, body.error, retry=body.retry, now=now)
    st.metrics.failures.inc()
    return OutcomeOut(id=body.id, status=status)


@router.post(
    "/worker/complete-and-claim",
    response_model=CompleteAndClaimOut,
    responses=_COMMON,
    tags=["worker"],
    summary="Complete finished leases and claim more, in one round trip",
)
async def complete_and_claim(
    body: CompleteAndClaimIn, st: St, caller: Caller, now: Now
) -> Response:
    """Complete each `done` lease (fenced like `/worker/complete`: a stale one is reported in
    `lost` and left unchanged, a repeat is fine) and claim up to `max` new items, in one store
    transaction. Never waits: an empty `leases` means nothing was claimable."""
    queues = list(body.queues or []) + ([body.queue] if body.queue else [])
    if not queues:
        raise ValidationError("give `queue` or `queues`")
    names = check_queues(queues)
    for name in names:
        if not caller.may_work(name):
            raise Problem("forbidden", f"this token may not claim from queue {name!r}")
    _check_caps(st.config, limit=body.max, lease=body.lease)
    who = _worker_for_claim(caller, st, body.worker)
    lost: list[LeaseKey] = []
    done: list[tuple[Lease, Any]] = []
    for ref in body.done:
        if not st.config.no_auth and ref.worker is not None and ref.worker != caller.identity:
            lost.append(LeaseKey(id=ref.id, token=ref.token))  # another worker's: refused
            continue
        owner = (ref.worker or who) if st.config.no_auth else caller.identity
        done.append((_lease(ref, owner), ref.result))
    started = time.perf_counter()
    refused, leases = await st.queue.complete_and_claim(
        done, names, worker=who, lease=body.lease, max=body.max, now=now
    )
    st.activity.claim_took(names, time.perf_counter() - started, fused=True)
    lost += [LeaseKey(id=x.id, token=x.token) for x in refused]
    st.metrics.lease_lost.inc(len(lost))
    st.metrics.completions.inc(len(done) - len(refused))
    answer = await _hand_over(
        st, leases, lambda: CompleteAndClaimOut(lost=lost, leases=[LeaseOut.of(x) for x in leases])
    )
    _count_claimed(st, leases)
    return answer


@router.post(
    "/queues/{queue}/items",
    response_model=EnqueueOut,
    status_code=201,
    responses=_COMMON,
    tags=["producer"],
)
async def enqueue(
    queue: QueuePath, body: EnqueueIn, st: St, caller: Caller, now: Now
) -> EnqueueOut:
    """Add one item (`payload`) or a batch (`payloads`, atomically); ids in input order."""
    if not caller.may_enqueue(queue):
        raise Problem("forbidden", f"this token may not enqueue on queue {queue!r}")
    given = body.model_fields_set
    options: dict[str, Any] = {
        "priority": body.priority,
        "delay": body.delay,
        "run_at": body.run_at,
        "max_attempts": body.max_attempts,
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
    item = await st.queue.get(item_id)
    if not (caller.may_enqueue(item.queue) or caller.may_work(item.queue)):
        raise ItemNotFound(item_id)  # do not reveal items outside the caller's queues
    return item


@router.get("/items/{item_id}", response_model=ItemOut, responses=_ITEM, tags=["producer"])
async def get_item(item_id: IdPath, st: St, caller: Caller) -> ItemOut:
    """The item as stored (never its lease token)."""
    return ItemOut.of(await _visible_item(st, caller, item_id))


@router.get(
    "/items/{item_id}/history", response_model=HistoryOut, responses=_ITEM, tags=["producer"]
)
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


@router.get("/queues/{queue}/items", response_model=ItemsOut, responses=_COMMON, tags=["producer"])
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
    if not (caller.may_enqueue(queue) or caller.may_work(queue)):
        raise Problem("forbidden", f"this token may not read queue {queue!r}")
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


@router.get("/queues", response_model=QueuesOut, responses=_COMMON, tags=["admin"])
async def list_queues(st: St, caller: Caller, now: Now) -> QueuesOut:
    """Every queue that holds at least one item, sorted, with its counts and expired leases
    (admin)."""
    _need_admin(caller)
    names = await st.queue.queues()
    return QueuesOut(queues=[StatsOut.of(await st.queue.stats(n, now=now)) for n in names])


@router.delete(
    "/items/{item_id}",
    response_model=OutcomeOut,
    responses=_ITEM | {409: _problem("The item is not queued")},
    tags=["producer"],
)
async def cancel_item(item_id: IdPath, st: St, caller: Caller, now: Now) -> OutcomeOut:
    """Cancel a queued item (409 invalid-state when it is claimed or finished)."""
    item = await _visible_item(st, caller, item_id)
    if not caller.may_enqueue(item.queue):
        raise Problem("forbidden", "cancelling needs the `enqueue` scope on the item's queue")
    await st.queue.cancel(item_id, now=now)
    return OutcomeOut(id=item_id, status=Status.CANCELLED)


@router.post(
    "/items/{item_id}/requeue",
    response_model=OutcomeOut,
    responses=_ITEM | {409: _problem("The item is not dead")},
    tags=["admin"],
)
async def requeue_item(
    item_id: IdPath, st: St, caller: Caller, now: Now, body: RequeueIn | None = None
) -> OutcomeOut:
    """Move a dead item back to queued with fresh attempts (admin)."""
    _need_admin(caller)
    max_attempts = None if body is None else body.max_attempts
    await st.queue.requeue(item_id, max_attempts=max_attempts, now=now)
    return OutcomeOut(id=item_id, status=Status.QUEUED)


def _need_admin(caller: Principal) -> None:
    if not caller.admin:
        raise Problem("forbidden", "this needs a token with the `admin` scope")


@router.get("/queues/{queue}/stats", response_model=StatsOut, responses=_COMMON, tags=["admin"])
async def queue_stats(queue: QueuePath, st: St, caller: Caller, now: Now) -> StatsOut:
    """Counts per status plus expired leases; zeros for a queue never used (admin)."""
    _need_admin(caller)
    return StatsOut.of(await st.queue.stats(queue, now=now))


@router.post("/queues/{queue}/purge", response_model=PurgeOut, responses=_COMMON, tags=["admin"])
async def purge(queue: QueuePath, body: PurgeIn, st: St, caller: Caller, now: Now) -> PurgeOut:
    """Delete the queue's finished items that finished more than `older_than` seconds ago."""
    _need_admin(caller)
    return PurgeOut(deleted=await st.queue.purge(queue, older_than=body.older_than, now=now))


@router.get("/healthz", response_model=HealthOut, tags=["ops"])
async def healthz() -> HealthOut:
    """The process is alive (says nothing about the database)."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=HealthOut,
    responses={503: _problem("The database is unreachable")},
    tags=["ops"],
)
async def readyz(st: St) -> HealthOut:
    """The database answers a query within the store deadline."""
    await st.queue.stats("workclaim.readyz")
    return HealthOut(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses=_COMMON | {200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    tags=["ops"],
)
async def metrics(st: St, caller: Caller) -> Response:
    """Prometheus metrics (admin scope): claims, completions, failures, lease-lost, claim
    latency, long-polls waiting, and items per queue and status."""
    _need_admin(caller)
    for name in sorted(st.metrics.queues):
        s = await st.queue.stats(name)
        st.metrics.set_counts(
            name,
            {
                k: getattr(s, k)
                for k in ("queued", "claimed", "done", "dead", "cancelled", "expired")
            },
        )
    return Response(st.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
