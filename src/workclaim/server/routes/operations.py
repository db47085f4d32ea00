"""The operators' routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from workclaim.server.deps import Caller, St, require_admin
from workclaim.server.openapi import COMMON, problem
from workclaim.server.schemas import HealthOut

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is alive (says nothing about the database)."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=HealthOut,
    responses={503: problem("The database is unreachable")},
)
async def readyz(st: St) -> HealthOut:
    """The database answers a query within the store deadline."""
    await st.queue.stats("workclaim.readyz")
    return HealthOut(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses=COMMON | {200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
)
async def metrics(st: St, caller: Caller) -> Response:
    """Prometheus metrics (admin scope): claims, completions, failures, lease-lost, claim
    latency, long-polls waiting, and items per queue and status."""
    require_admin(caller)
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
