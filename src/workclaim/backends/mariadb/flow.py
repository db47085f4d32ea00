"""Flow control on MariaDB: policies, pause, groups and rates (docs/contract.md, "Flow control").

A PLACEHOLDER until mdb-flow's module replaces this file: no queue is ever managed, so the claim
never calls `take` and enqueue marks no item as managed. The functions and their signatures are
the interface backend.py calls (the same as SQLite's flow.py, plus `any_managed`); mdb-flow
keeps them. Two hooks outside this file: the SQL function `workclaim_managed(queue)` (migration
0001 returns 0; replace it in 0002 so the claim procedures send a managed queue back to Python),
and `listener.bump(cur)` to wake other processes' waiting claims when slots free up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workclaim.backends.mariadb.connection import Cursor
from workclaim.errors import BackendError
from workclaim.models import QueuePolicy

_MISSING = "flow control on MariaDB is not built yet (mdb-flow)"


def any_managed(cur: Cursor, queues: Sequence[str]) -> bool:
    """Whether any of `queues` is managed (a policy, a pause or groups): the claim then takes
    through `take`. Placeholder: never."""
    return False


def is_managed(cur: Cursor, queue: str) -> bool:
    """Whether `queue` is managed (its new items are enqueued with flow = 1). Placeholder: no."""
    return False


def set_grouped(cur: Cursor, queue: str) -> None:
    """Record that `queue` has items in groups (which makes it managed). Placeholder: nothing."""


def activate(cur: Cursor, queue: str, groups: Sequence[str]) -> None:
    """Mark `groups` of a managed `queue` as having claimable items. Placeholder: nothing."""


def activate_item(cur: Cursor, item_id: int) -> None:
    """After a requeue: mark the item's group active if its queue is managed. Placeholder."""


def take(
    cur: Cursor,
    queues: Sequence[str],
    worker: str,
    lease_us: int,
    limit: int,
    now_us: int,
) -> list[tuple[Any, ...]]:
    """Lease up to `limit` items of managed queues in the fair order within their limits; rows
    as `rows.leases` reads them (with the group before created_at)."""
    raise BackendError(_MISSING)


def rate_due(cur: Cursor, queues: Sequence[str], now_us: int) -> int | None:
    """When a rate window of `queues` next lets a claim through (next_due), or None."""
    return None


def read_policy(cur: Cursor, queue: str) -> QueuePolicy:
    """The queue's stored policy. Placeholder: no limits, not paused."""
    return QueuePolicy(queue=queue)


def set_policy(cur: Cursor, policy: QueuePolicy) -> QueuePolicy:
    """Store the policy's limits. Placeholder: refused."""
    raise BackendError(_MISSING)


def set_paused(cur: Cursor, queue: str, paused: bool) -> QueuePolicy:
    """Pause or resume the queue. Placeholder: refused."""
    raise BackendError(_MISSING)


def live_by_group(cur: Cursor, queue: str, limit: int, now_us: int) -> list[tuple[str, int]]:
    """(group, live leases) of the `limit` groups holding most, most first. Placeholder: none."""
    return []
