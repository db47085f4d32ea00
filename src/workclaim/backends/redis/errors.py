"""Translation of redis-py errors into the workclaim error tree, by class and error code only."""

from __future__ import annotations

from typing import Final

import redis

from workclaim.errors import BackendError, BackendUnavailable, ConfigError, WorkclaimError

# Error codes (the first word of an error reply) that redis-py has no class for and that mean
# "retry later": a script past its time limit, a replica without its primary.
_BUSY_CODES: Final = frozenset({"BUSY", "MASTERDOWN"})


def translate(exc: redis.RedisError) -> WorkclaimError:
    """A redis-py error as a workclaim error, by class (never by message text)."""
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return ConfigError(f"Redis refused workclaim's credentials ({exc}); check the URL")
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return ConfigError(
            f"Redis refused a command to workclaim's user ({exc}); see docs/redis.md for the "
            "ACL it needs"
        )
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return BackendUnavailable(f"Redis cannot be reached or did not answer in time ({exc})")
    if isinstance(exc, redis.ReadOnlyError):
        return BackendUnavailable(
            f"Redis refused a write because this server is a replica ({exc}); connect to the "
            "primary"
        )
    if isinstance(exc, redis.ResponseError) and str(exc).split(" ", 1)[0] in _BUSY_CODES:
        return BackendUnavailable(f"Redis is busy ({exc}); retry later")
    if isinstance(exc, redis.OutOfMemoryError):
        return BackendError(f"Redis is out of memory (maxmemory reached); nothing written ({exc})")
    return BackendError(f"Redis error: {exc}")
