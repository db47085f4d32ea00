"""The server's fast path calls the hot route functions itself: it must supply exactly the
parameters FastAPI would, so a dependency added to one of those routes is never skipped."""

from __future__ import annotations

import pytest

from workclaim.server.fastpath import ROUTES, SUPPLIED, route_parameters
from workclaim.server.routes.workers import router


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_the_fast_path_supplies_every_parameter_of_its_routes(path: str) -> None:
    model, route = ROUTES[path]
    assert route_parameters(route) <= SUPPLIED, "a new dependency: teach FastPath._answer"
    [api_route] = [r for r in router.routes if getattr(r, "path", None) == path]
    assert api_route.endpoint is route  # type: ignore[attr-defined]
    assert api_route.methods == {"POST"}  # type: ignore[attr-defined]
    body = api_route.dependant.body_params  # type: ignore[attr-defined]
    assert [p.field_info.annotation for p in body] == [model]
    assert not api_route.dependencies  # type: ignore[attr-defined]
