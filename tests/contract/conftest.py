"""The contract suite's `queue`: one per (backend, transport) pair."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.transports import TRANSPORTS
from workclaim import Settings
from workclaim.api import QueueAPI


@pytest.fixture(params=sorted(TRANSPORTS))
def queue(request: pytest.FixtureRequest, store_url: str, settings: Settings) -> Iterator[QueueAPI]:
    """The Queue API over this test's store, through each transport."""
    with TRANSPORTS[request.param](store_url, settings) as q:
        yield q


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL through PgBouncer runs the contract on the `direct` transport only: over HTTP
    the server reaches the store through the same library calls, so the pair would add CI time
    (about 20 s) and no pooler behaviour the direct pair does not already check."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(item, "callspec", None)
        pair = (params.params.get("backend_name"), params.params.get("queue")) if params else None
        (dropped if pair == ("postgres-pgbouncer", "http") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
