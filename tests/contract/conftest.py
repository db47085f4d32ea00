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
