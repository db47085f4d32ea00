"""What a crash of the Redis server can lose, read from its settings at connect, and the policy.

workclaim's full promise needs `appendonly yes` with `appendfsync always` (every acknowledged
script is on disk before the reply) and `maxmemory-policy noeviction` (Redis never drops a key
to make room). An evicting policy is refused outright: it can silently delete items and leases.
Weaker persistence is logged once per server (a `workclaim` logger warning), or refused when
`Settings.strict_durability` is set (the policy in `backends/durability.py`). Where `CONFIG GET`
is refused (managed Redis, ACLs), the settings come from `INFO persistence` / `INFO memory`,
which do not show `appendfsync`.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from workclaim.backends.durability import enforce
from workclaim.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Durability:
    """The server's persistence and eviction settings; None where they could not be read."""

    appendonly: bool
    appendfsync: str | None
    maxmemory_policy: str | None
    source: str  # "CONFIG GET" or "INFO"

    @property
    def full(self) -> bool:
        """True when an acknowledged change survives a crash of the server."""
        return self.appendonly and self.appendfsync == "always"

    def what_a_crash_loses(self) -> str:
        """One sentence on what a server crash (or restart) can lose under these settings."""
        if not self.appendonly:
            return (
                "persistence is off (appendonly no): a restart of the Redis server loses every "
                "item, lease and token counter since the last RDB snapshot, if any"
            )
        if self.appendfsync == "everysec":
            return (
                "appendfsync is everysec: a crash of the Redis host can lose about the last "
                "second of acknowledged enqueues, claims and completions (up to 2 s, and on a "
                "crash of the Redis process too, when the disk is slow)"
            )
        if self.appendfsync == "no":
            return (
                "appendfsync is no: a crash of the Redis host can lose the last tens of seconds "
                "of acknowledged changes (whatever the OS had not yet written)"
            )
        return (
            "appendfsync could not be read (CONFIG GET is refused): unless it is 'always', a "
            "crash of the Redis host can lose the last acknowledged changes"
        )


def read_durability(client: redis.Redis) -> Durability:
    """The server's settings, from CONFIG GET, else from INFO."""
    try:
        config = client.config_get("appendonly", "appendfsync", "maxmemory-policy")
        return Durability(
            appendonly=str(config.get("appendonly", "no")).lower() == "yes",
            appendfsync=str(config["appendfsync"]).lower() if "appendfsync" in config else None,
            maxmemory_policy=(
                str(config["maxmemory-policy"]).lower() if "maxmemory-policy" in config else None
            ),
            source="CONFIG GET",
        )
    except redis.ResponseError:
        pass  # CONFIG refused (ACL, renamed command): INFO shows most of it
    persistence = client.info("persistence")
    memory = client.info("memory")
    policy = memory.get("maxmemory_policy")
    return Durability(
        appendonly=str(persistence.get("aof_enabled", "0")) == "1",
        appendfsync=None,
        maxmemory_policy=None if policy is None else str(policy).lower(),
        source="INFO",
    )


def check_durability(durability: Durability, *, strict: bool, server: str) -> None:
    """Refuse an evicting policy (and, when strict, anything short of the full promise); else
    warn once per server about what a crash can lose."""
    policy = durability.maxmemory_policy
    if policy is not None and policy != "noeviction":
        raise ConfigError(
            f"Redis at {server} has maxmemory-policy {policy}, which may evict workclaim's items "
            "and leases; set maxmemory-policy noeviction (or use a Redis of its own)"
        )
    if strict and policy is None:
        raise ConfigError(
            f"strict_durability is set and the maxmemory-policy of Redis at {server} could not "
            "be read; allow CONFIG GET or INFO for workclaim's user, or turn strict_durability off"
        )
    enforce(
        f"Redis at {server}",
        None if durability.full else durability.what_a_crash_loses(),
        fix="set appendonly yes and appendfsync always",
        strict=strict,
    )
