"""The Redis key layout: every key is `<prefix>:<kind>` or `<prefix>:<kind>:<name>`.

The kind comes before the (user-chosen) name, so a queue name containing `:` can never make one
key look like another. The Lua scripts build the same keys with `key()` in `scripts/_common.lua`
(a test checks that both agree). Kinds:

    schema            string   layout version, set by `migrate`
    ids, tokens       string   INCR counters for item ids and fencing tokens (never reset)
    item:<id>         hash     one item's fields (payload and result stored as opaque text;
                               history = '1' when it keeps an attempt history)
    history:<id>      list     the item's attempt history, one event string per RPUSH
    ready:<queue>     zset     claimable items: score priority, member hex(run_at) + hex(id)
    delayed:<queue>   zset     queued items not yet due: score run_at (us), member id
    leases            zset     every claimed item: score expires_at (us), member id
    claimed:<queue>   zset     the same per queue (stats' expired count, next_due)
    done:<queue>      zset     finished items by status: score finished_at (us), member id
    dead:<queue>      zset       (stats counts them, purge and retention walk them)
    cancelled:<queue> zset
    ids:<status>:<queue> zset  items by id (score = member = id) for status queued, done,
                               dead, cancelled (`items`; claimed ones come from claimed:<queue>)
    queues            set      the queue names that hold items (purge removes emptied ones)
    dedupe:<queue>    hash     dedupe key -> id of the live item holding it
    wakeup            channel  "work may be claimable" (pub/sub; channels ignore the db number)
"""

from __future__ import annotations

import re

from workclaim.errors import ConfigError

DEFAULT_PREFIX = "workclaim"
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def check_prefix(prefix: str) -> str:
    """A key prefix: 1-128 of letters, digits and `_ . : -`, so it is also a safe SCAN pattern."""
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"invalid Redis key prefix {prefix!r}: use 1-128 characters from A-Z a-z 0-9 _ . : - "
            "starting with a letter or digit"
        )
    return prefix


def key(prefix: str, kind: str, name: str | int | None = None) -> str:
    """The key (or channel) of `kind`, for one queue or item `name` where the kind has one."""
    return f"{prefix}:{kind}" if name is None else f"{prefix}:{kind}:{name}"
