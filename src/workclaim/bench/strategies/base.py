"""What a claim strategy is: a worker side (claim, complete, ...) and an admin side (items, state).

A `Target` names the stores a strategy runs against; it is plain data so it crosses into spawned
worker processes, where each worker opens its own connection from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

Outcome = Literal["claimed", "empty", "lost"]


def strip_query(url: str, *names: str) -> str:
    """`url` without workclaim's own query options, for a driver that would choke on them."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in names]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True, slots=True)
class Target:
    """Where one strategy runs: its SQL store (or workclaim URL), an optional Redis, a tag that
    isolates this run's tables, queues and keys from everything else on the servers."""

    strategy: str
    backend: str  # sqlite | postgres | redis | mariadb: the store the row is reported under
    url: str  # workclaim URL (skip-locked) or SQL store URL (the others)
    tag: str  # unique per bench row: queue names, PG schema, MariaDB database, Redis key prefix
    redis_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Grant:
    """One item a claim handed to this worker; `handle` is whatever the strategy needs to end it."""

    item_id: int
    token: int | None
    lease_seconds: float | None
    expires_at_us: int | None = None
    handle: Any = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The answer to one claim attempt."""

    outcome: Outcome
    grants: Sequence[Grant] = ()


EMPTY = ClaimResult("empty")
LOST = ClaimResult("lost")


class WorkerSide(Protocol):
    """The calls a worker process makes; fenced ones raise `LeaseLost` when refused."""

    supports_leases: bool  # heartbeat, release and lease expiry are meaningful

    def claim(
        self, run: int, *, worker: str, limit: int, lease: float, wait: float
    ) -> ClaimResult: ...

    def complete(self, grant: Grant) -> None: ...

    def heartbeat(self, grant: Grant, extend: float) -> Grant: ...

    def release(self, grant: Grant) -> None: ...

    def held_by_me(self, grant: Grant, worker: str) -> bool:
        """True while the store still shows `grant`'s item claimed by `worker` (for stalls)."""
        ...

    def pending(self, run: int) -> int:
        """Items of this run not yet done (queued or claimed)."""
        ...

    def close(self) -> None: ...


class AdminSide(Protocol):
    """The coordinator's calls: schema, fresh items per run, final state, cleanup."""

    def add_items(self, run: int, count: int) -> list[int]: ...

    def final_state(self, run: int, ids: Sequence[int]) -> dict[int, str]: ...

    def settings(self) -> dict[str, Any]:
        """Backend settings worth recording next to the figures (synchronous, versions...)."""
        ...

    def close(self) -> None:
        """Drop what this target created (tables, schema, keys, queues) and disconnect."""
        ...
