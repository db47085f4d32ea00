"""The Redis key layout's version and its migration (Redis's counterpart of the SQL backends'
`migrations/`): `scripts/migrate.lua` sets the version, and upgrades an older layout in bounded
steps. The layout itself is described in keys.py."""

from __future__ import annotations

from typing import Final

from workclaim.backends.redis.connection import Connections
from workclaim.backends.redis.keys import key
from workclaim.errors import SchemaMismatch

# 2: ids:<status>:<queue> indexes, history:<id> lists; 3: flow control (groups, policies), whose
# keys are made as they are used: 2 -> 3 only stamps the version (items keep the default group);
# 4: schedules (schedule:<name>, schedules), new keys made as they are used: 3 -> 4 only stamps
# the version, as 2 -> 3 did (and PostgreSQL's schema goes to 7), so a workclaim that knows no
# schedules refuses the store instead of running beside it without ever firing them
SCHEMA_VERSION: Final = 4
MIGRATE_BATCH: Final = 10_000  # index entries written per script when upgrading layout 1


def _stored_version(store: Connections) -> str | None:
    """The layout version as stored under the store's prefix (None: none yet)."""
    raw: str | None = store._redis(
        lambda: store._client.get(key(store.prefix, "schema")), idempotent=True
    )
    return raw


def migrate(store: Connections) -> None:
    """Bring the layout under the store's prefix to this version; `SchemaMismatch` if newer."""
    if _stored_version(store) == "1":
        _upgrade_from_1(store)
    current = int(store._run("migrate", None, SCHEMA_VERSION))
    if current > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the Redis keys under prefix {store.prefix!r} have layout version {current}, "
            f"newer than this workclaim understands ({SCHEMA_VERSION}); upgrade workclaim"
        )


def verify(store: Connections) -> None:
    """`SchemaMismatch` unless the layout is exactly this version's."""
    raw = _stored_version(store)
    current = 0 if raw is None else int(raw)
    if current != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the Redis keys under prefix {store.prefix!r} have layout version {current}, "
            f"this workclaim needs {SCHEMA_VERSION}: run `workclaim migrate`"
        )


def _upgrade_from_1(store: Connections) -> None:
    """Layout 1 -> 2 in bounded steps (MIGRATE_BATCH members per script): index every queue's
    items by id per status and drop empty queues from the queues set."""
    names = store._redis(
        lambda: store._client.smembers(key(store.prefix, "queues")), idempotent=True
    )
    for queue in sorted(names):
        for source in ("ready", "delayed", "done", "dead", "cancelled"):
            offset = 0
            while True:
                n = int(
                    store._run(
                        "migrate", None, SCHEMA_VERSION, queue, source, offset, MIGRATE_BATCH
                    )
                )
                if n < MIGRATE_BATCH:
                    break
                offset += n
        store._run("migrate", None, SCHEMA_VERSION, queue, "-", 0, 1)
