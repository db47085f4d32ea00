"""The claim path that `/worker/claim`, `/worker/next` and `/worker/complete-and-claim` share.

Every claim passes the same checks before the store (`admit`: queue names, the token's `work`
scope on each queue, this server's caps, the worker's identity) and hands its leases over the
same way (`hand_over`: encode the answer, or give the leases back when it cannot be encoded).
A waiting claim goes through `claim` (long-poll admission and hang-up detection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, Protocol

from fastapi import Request, Response
from pydantic import BaseModel

from workclaim import fastjson
from workclaim.errors import ValidationError, WorkclaimError
from workclaim.models import Lease
from workclaim.server.auth import Principal
from workclaim.server.config import ServerConfig
from workclaim.server.deps import State, require_claim
from workclaim.server.problems import Problem
from workclaim.server.schemas import ClaimOut, LeaseOut
from workclaim.validation import check_queues

log = logging.getLogger("workclaim.server")


class NamesQueues(Protocol):
    """A request body that names the queues to claim from: one `queue`, or `queues`."""

    queue: str | None
    queues: list[str] | None


def queues_of(body: NamesQueues) -> list[str]:
    """The queues a claim body names (`queues`, then `queue`); 422 when it names none."""
    queues = list(body.queues or []) + ([body.queue] if body.queue else [])
    if not queues:
        raise ValidationError("give `queue` or `queues`")
    return queues


def check_caps(
    cfg: ServerConfig, *, limit: int | None = None, lease_seconds: float | None = None
) -> None:
    """This server's caps on a claim's `limit` and on a lease's length (at a claim, or a
    heartbeat's `extend`), which may be lower than the library's."""
    if limit is not None and limit > cfg.max_batch:
        raise ValidationError(f"limit must be at most {cfg.max_batch} on this server")
    if lease_seconds is not None and lease_seconds > cfg.max_lease:
        raise ValidationError(f"a lease may last at most {cfg.max_lease} seconds on this server")


def admit(
    st: State,
    caller: Principal,
    queues: Sequence[str],
    *,
    limit: int,
    lease_seconds: float,
    worker: str | None,
) -> tuple[tuple[str, ...], str]:
    """The checks every claim makes before it reaches the store, in this order: the queue
    names, the token's `work` scope on each, this server's caps, then the worker. Returns the
    deduplicated queue names and the worker the leases will belong to."""
    names = check_queues(queues)
    require_claim(caller, names)
    check_caps(st.config, limit=limit, lease_seconds=lease_seconds)
    return names, _worker(caller, st, worker)


def _worker(caller: Principal, st: State, requested: str | None) -> str:
    """The worker a claim's leases belong to: the token's identity (a different `worker` is
    refused), or under --no-auth the requested name."""
    if st.config.no_auth:
        return requested or caller.identity
    if requested is not None and requested != caller.identity:
        raise Problem(
            "forbidden",
            "the worker is the token's identity; omit `worker` or send the same name",
        )
    return caller.identity


async def claim(
    request: Request,
    st: State,
    caller: Principal,
    queues: Sequence[str],
    *,
    limit: int,
    lease_seconds: float,
    wait: float,
    worker: str | None,
    now: datetime | None,
) -> Response:
    """A claim's answer: 200 with the leases, or 204 when nothing was claimable within `wait`
    (capped by the server's `max_wait`) or the caller hung up while it waited."""
    names, who = admit(st, caller, queues, limit=limit, lease_seconds=lease_seconds, worker=worker)
    wait = min(wait, st.config.max_wait)
    if wait > 0:
        with st.longpolls.slot(caller.identity):
            st.metrics.longpolls.inc()
            try:
                waiting = st.waiting.claim(
                    names,
                    worker=who,
                    lease_seconds=lease_seconds,
                    limit=limit,
                    wait=wait,
                    now=now,
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
        leases = await st.queue.claim(
            names, worker=who, lease_seconds=lease_seconds, limit=limit, now=now
        )
        took = time.perf_counter() - started
        st.metrics.claim_latency.observe(took)
        st.activity.claim_took(names, took)
    if not leases:
        return Response(status_code=204)
    return await hand_over(st, leases, ClaimOut)


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


async def hand_over(
    st: State, leases: list[Lease], model: type[BaseModel], **fields: Any
) -> Response:
    """The JSON answer `model(**fields, leases=leases)` that carries new leases to the caller,
    counted in the metrics. orjson encodes it from plain dicts (no model is built); what orjson
    refuses goes through the model. If it cannot be encoded at all (an item stored before the
    depth limit, say), the leases are released (attempts given back) before the 500, so no item
    waits out a lease nobody received."""
    body: bytes | str
    try:
        try:
            body = fastjson.dumps_fast({**fields, "leases": [LeaseOut.doc(x) for x in leases]})
        except TypeError:
            body = model(**fields, leases=[LeaseOut.of(x) for x in leases]).model_dump_json()
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
    for granted in leases:
        st.metrics.claims.labels(queue=granted.queue).inc()
        st.activity.claimed(granted.queue)
    return Response(body, media_type="application/json")
