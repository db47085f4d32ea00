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

Flow control (docs/redis.md, "Flow control"); <qg> is '<len(queue)>:<queue>:<group>', one group
of one queue whatever ':' the names hold, group '' the default group (whose ready zset is
ready:<queue>). An item of a named group has a `group` field; none means the default group.

    policy:<queue>    hash     limits (concurrency, group_concurrency, rate_count/_us/_per,
                               group_rate_count/_us/_per) and paused = '1'; absent: none
    gready:<qg>       zset     a named group's claimable items, like ready:<queue>
    groups:<queue>    zset     while a named group has ready items: per group with ready items,
                               score its first item's priority, member hex(served) + rank + group
    gidx:<queue>      hash     group -> its member in groups:<queue>
    served:<queue>    hash     group -> greatest token issued to an item of it (from the first
                               flow-controlled claim on; purge drops it with the queue's last item)
    gclaimed:<qg>     zset     a named group's leases by expiry (group_concurrency)
    nclaimed:<queue>  zset     every named group's leases by expiry (the default group's live
                               leases are claimed:<queue>'s less these)
    rate:<queue>      zset     the queue's claims while it has a rate: score time, member token
    grate:<qg>        zset     the same per group while the queue has a group rate
    rwake:<queue>     zset     group -> when its full rate window moves on (next_due)

Schedules (docs/contract.md, "Schedules"; layout 4):

    schedule:<name>   hash     the settings as given (queue, cron, timezone, payload, priority,
                               max_attempts and group, '' for none, catch_up, enabled '1'/'0'),
                               version, set_at, created_at, updated_at (us), and once a slot
                               fired last_slot (us) and last_item_id
    schedules         zset     every schedule's name, score 0 (so by name)
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
