"""The workers' routes: claim (`/worker/claim`, `/worker/next`), end or extend a lease
(heartbeat, complete, release, fail), and both at once (`/worker/complete-and-claim`).

The worker a lease belongs to is the caller's identity from its bearer token, never a field of
the request: lease-ending calls build `Lease(..., worker=identity)`, so the store's fence refuses
another worker's lease with 409 even though tokens are sequential and guessable.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from workclaim import fastjson
from workclaim._time import from_micros
from workclaim.errors import ItemNotFound, LeaseLost
from workclaim.models import Lease, Status
from workclaim.server import claiming, renamed
from workclaim.server.auth import Principal
from workclaim.server.deps import Caller, Now, St, State
from workclaim.server.openapi import CLAIM, COMMON, LEASE
from workclaim.server.problems import Problem
from workclaim.server.schemas import (
    NAME_REGEX,
    ClaimIn,
    ClaimOut,
    CompleteAndClaimIn,
    CompleteAndClaimOut,
    CompleteIn,
    FailIn,
    HeartbeatIn,
    HeartbeatOut,
    LeaseRef,
    OutcomeOut,
    ReleaseIn,
)

router = APIRouter(tags=["worker"])


@router.post(
    "/worker/claim",
    response_model=ClaimOut,
    responses=CLAIM,
    summary="Claim items (long-poll with wait)",
)
async def claim(body: ClaimIn, request: Request, st: St, caller: Caller, now: Now) -> Any:
    """Lease up to `limit` items from the named queues in (priority, run_at, id) order (round
    robin across groups within a priority), within each queue's flow-control policy; 204 when
    nothing is claimable within `wait` seconds. The safe form of `GET /worker/next`."""
    body, old = body.with_new_names()
    result = await claiming.claim(
        request,
        st,
        caller,
        claiming.queues_of(body),
        limit=body.limit,
        lease_seconds=body.lease_seconds,
        wait=body.wait,
        worker=body.worker,
        now=now,
    )
    return renamed.mark(result) if old else result


@router.get(
    "/worker/next",
    response_model=ClaimOut,
    responses=CLAIM,
    summary="Claim items (GET form; prefer POST /worker/claim)",
)
async def claim_next(
    request: Request,
    st: St,
    caller: Caller,
    now: Now,
    queue: Annotated[list[Annotated[str, Query(pattern=NAME_REGEX)]], Query(min_length=1)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 1,
    lease_seconds: Annotated[float, Query(ge=0.01, le=604_800)] = 30.0,
    wait: Annotated[float, Query(ge=0, le=3_600)] = 0.0,
    max: Annotated[int | None, Query(ge=1, le=1000, deprecated=True)] = None,
    lease: Annotated[float | None, Query(ge=0.01, le=604_800, deprecated=True)] = None,
) -> Any:
    """The spike's endpoint, kept for compatibility. A GET may be repeated or prefetched by
    proxies and caches, and each repeat claims more items (held until their leases expire):
    prefer `POST /worker/claim`. Answers carry `Cache-Control: no-store`. `max` and `lease`
    are the deprecated names of `limit` and `lease_seconds`."""
    old = max is not None or lease is not None
    if old:
        renamed.check_query(request.query_params.keys(), max=max, lease=lease)
    result = await claiming.claim(
        request,
        st,
        caller,
        queue,
        limit=limit if max is None else max,
        lease_seconds=lease_seconds if lease is None else lease,
        wait=wait,
        worker=None,
        now=now,
    )
    result.headers["Cache-Control"] = "no-store"
    return renamed.mark(result) if old else result


def _worker_for_lease(caller: Principal, st: State, ref: LeaseRef) -> str:
    """The worker that must hold the lease: the token's identity (409 when the body names
    another), or under --no-auth the named worker."""
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


def _outcome(item_id: int, status: Status) -> Response:
    """An `OutcomeOut` answer, encoded by orjson without building the model (the lease-ending
    calls are half of the single-item claim loop)."""
    return Response(
        fastjson.dumps({"id": item_id, "status": status}), media_type="application/json"
    )


@contextlib.contextmanager
def _counting_lease_lost(st: State) -> Iterator[None]:
    """Count a `LeaseLost` in the metrics and let it through (it becomes a 409)."""
    try:
        yield
    except LeaseLost:
        st.metrics.lease_lost.inc()
        raise


@router.post("/worker/heartbeat", response_model=HeartbeatOut, responses=LEASE)
async def heartbeat(body: HeartbeatIn, st: St, caller: Caller, now: Now) -> HeartbeatOut:
    """Extend the lease to now + `extend` (default: its own length); 409 if it is lost."""
    claiming.check_caps(st.config, lease_seconds=body.extend)
    with _counting_lease_lost(st):
        lease = _lease(body, _worker_for_lease(caller, st, body))
        renewed = await st.queue.heartbeat(lease, extend=body.extend, now=now)
    return HeartbeatOut(id=renewed.id, token=renewed.token, expires_at=renewed.expires_at)


@router.post("/worker/complete", response_model=OutcomeOut, responses=LEASE)
async def complete(body: CompleteIn, st: St, caller: Caller, now: Now) -> Response:
    """Mark the item done. Repeating a successful complete is harmless."""
    with _counting_lease_lost(st):
        lease = _lease(body, _worker_for_lease(caller, st, body))
        await st.queue.complete(lease, result=body.result, now=now)
    st.metrics.completions.inc()
    return _outcome(body.id, Status.DONE)


@router.post("/worker/release", response_model=OutcomeOut, responses=LEASE)
async def release(body: ReleaseIn, st: St, caller: Caller, now: Now) -> Response:
    """Give the item back (after `delay` seconds) without using up an attempt."""
    with _counting_lease_lost(st):
        lease = _lease(body, _worker_for_lease(caller, st, body))
        await st.queue.release(lease, delay=body.delay, now=now)
    st.metrics.releases.inc()
    return _outcome(body.id, Status.QUEUED)


@router.post("/worker/fail", response_model=OutcomeOut, responses=LEASE)
async def fail(body: FailIn, st: St, caller: Caller, now: Now) -> Response:
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
        status = await st.queue.fail(
            lease, body.error, retry=body.retry, retry_delay=body.retry_delay, now=now
        )
    st.metrics.failures.inc()
    return _outcome(body.id, status)


@router.post(
    "/worker/complete-and-claim",
    response_model=CompleteAndClaimOut,
    responses=COMMON,
    summary="Complete finished leases and claim more, in one round trip",
)
async def complete_and_claim(
    body: CompleteAndClaimIn, st: St, caller: Caller, now: Now
) -> Response:
    """Complete each `done` lease (fenced like `/worker/complete`: a stale one is reported in
    `lost` and left unchanged, a repeat is fine) and claim up to `limit` new items, in one store
    transaction. Never waits: an empty `leases` means nothing was claimable."""
    body, old = body.with_new_names()
    queues = claiming.queues_of(body)
    names, who = claiming.admit(
        st, caller, queues, limit=body.limit, lease_seconds=body.lease_seconds, worker=body.worker
    )
    lost: list[dict[str, int]] = []
    done: list[tuple[Lease, Any]] = []
    for ref in body.done:
        if not st.config.no_auth and ref.worker is not None and ref.worker != caller.identity:
            lost.append({"id": ref.id, "token": ref.token})  # another worker's: refused
            continue
        owner = (ref.worker or who) if st.config.no_auth else caller.identity
        done.append((_lease(ref, owner), ref.result))
    started = time.perf_counter()
    refused, leases = await st.queue.complete_and_claim(
        done, names, worker=who, lease_seconds=body.lease_seconds, limit=body.limit, now=now
    )
    st.activity.claim_took(names, time.perf_counter() - started, fused=True)
    lost += [{"id": x.id, "token": x.token} for x in refused]
    st.metrics.lease_lost.inc(len(lost))
    st.metrics.completions.inc(len(done) - len(refused))
    answer = await claiming.hand_over(st, leases, CompleteAndClaimOut, lost=lost)
    return renamed.mark(answer) if old else answer
