"""What `workclaim stats` and `workclaim top` show, gathered the same way from a store or a server.

A *source* is a `QueueAPI` (only its read side is used: `queues`, `stats`, `items`): `Queue` for
a database URL, `workclaim.client.Client` for an http(s) URL. `snapshot` reads one
consistent-enough picture per refresh; `rates` turns two snapshots into items/s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from workclaim._time import utcnow
from workclaim.api import QueueAPI
from workclaim.config import Settings
from workclaim.errors import ConfigError
from workclaim.models import Item, QueueStats, Status

PAGE = 1_000  # items per listing call (the API's cap)
MAX_PAGES = 5  # pages read per queue and status per snapshot, to bound a refresh's cost


def is_server_url(url: str) -> bool:
    """True for a `workclaim serve` URL (http:// or https://)."""
    return urlsplit(url).scheme.lower() in {"http", "https"}


def open_source(url: str, *, token: str | None = None, timeout: float = 10.0) -> QueueAPI:
    """A `Client` for an http(s) URL, else a `Queue` that never changes the schema.

    A monitor must not write: auto-migration is off (a store without workclaim's schema is
    reported, not created) and a SQLite file that does not exist is refused before SQLite
    would create it.
    """
    if is_server_url(url):
        from workclaim.client import Client

        return Client(url, token=token, timeout=timeout, retries=1)
    _refuse_missing_sqlite_file(url)
    from workclaim.queue import Queue

    settings = Settings.from_env().with_changes(auto_migrate=False)
    return Queue(url, settings=settings)


def _refuse_missing_sqlite_file(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        return
    raw = unquote(parts.path)
    path = raw[1:] if raw.startswith("/") else raw  # sqlite:///rel.db, sqlite:////abs.db
    if path and path != ":memory:" and not os.path.exists(os.path.expanduser(path)):
        raise ConfigError(f"no SQLite database at {path} (check --db)")


@dataclass(frozen=True, slots=True)
class Rates:
    """Items per second between two snapshots of one queue."""

    claimed: float
    completed: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One refresh: counts per queue, and (when asked for) live leases and recent dead items.

    `leases` are `claimed` items, soonest expiry first; `dead` are `dead` items, most recently
    changed first. `at` is this host's clock when the counts were read.
    """

    at: datetime
    stats: tuple[QueueStats, ...]
    leases: tuple[Item, ...] = ()
    dead: tuple[Item, ...] = ()
    partial: frozenset[str] = field(default_factory=frozenset)

    def total(self) -> QueueStats:
        """The counts of every queue added up."""
        sums: dict[str, Any] = {}
        for name in ("queued", "claimed", "done", "dead", "cancelled", "expired"):
            sums[name] = sum(getattr(s, name) for s in self.stats)
        return QueueStats("(all)", **sums)  # not a valid queue name: no clash


def snapshot(
    source: QueueAPI, queues: Sequence[str] = (), *, leases: int = 0, dead: int = 0
) -> Snapshot:
    """Counts for `queues` (empty: every queue the store holds), plus up to `leases` live leases
    and `dead` dead items across them. Lists are read only for queues whose counts say there is
    something to list; `partial` names the statuses that had more items than one refresh reads."""
    names = list(dict.fromkeys(queues)) if queues else source.queues()
    counts = tuple(source.stats(name) for name in names)
    held: list[Item] = []
    failed: list[Item] = []
    partial: set[str] = set()
    for row in counts:
        if leases and row.claimed:
            held.extend(_listing(source, row.queue, Status.CLAIMED, partial))
        if dead and row.dead:
            failed.extend(_listing(source, row.queue, Status.DEAD, partial))
    held.sort(key=lambda item: (item.expires_at or item.updated_at, item.id))
    failed.sort(key=lambda item: (item.updated_at, item.id), reverse=True)
    return Snapshot(
        at=utcnow(),
        stats=counts,
        leases=tuple(held[:leases]),
        dead=tuple(failed[:dead]),
        partial=frozenset(partial),
    )


def _listing(source: QueueAPI, queue: str, status: Status, partial: set[str]) -> list[Item]:
    """Up to MAX_PAGES pages of the queue's items in `status`."""
    found: list[Item] = []
    after: int | None = None
    for _ in range(MAX_PAGES):
        page = source.items(queue, status, limit=PAGE, after=after)
        found.extend(page)
        if len(page) < PAGE:
            return found
        after = page[-1].id
    partial.add(status.value)
    return found


def rates(before: Snapshot, after: Snapshot) -> dict[str, Rates]:
    """Items/s per queue between two snapshots.

    completed/s is the growth of `done`; claimed/s is the growth of claimed + done + dead, the
    items that left `queued` through a claim. Both are floors: a claim that ended in a release or
    a retry within one interval, or a purge in it, is not seen (negative growth counts as 0).
    """
    seconds = (after.at - before.at).total_seconds()
    if seconds <= 0:
        return {}
    old = {row.queue: row for row in before.stats}
    out: dict[str, Rates] = {}
    for row in after.stats:
        prev = old.get(row.queue)
        if prev is None:
            continue
        left = (row.claimed + row.done + row.dead) - (prev.claimed + prev.done + prev.dead)
        out[row.queue] = Rates(
            claimed=max(left, 0) / seconds, completed=max(row.done - prev.done, 0) / seconds
        )
    return out
