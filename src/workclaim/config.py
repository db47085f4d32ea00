"""One frozen, validated `Settings` object for the policy that `Queue` applies on every backend.

Store-specific options (SQLite `synchronous`, the PostgreSQL schema, the Redis key prefix) live in
the database URL's query string instead; see docs/configuration.md. Environment variables
(`WORKCLAIM_*`) are read only by `Settings.from_env`, which the CLI and the server call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from workclaim.errors import ConfigError, ValidationError
from workclaim.retry import Backoff
from workclaim.validation import check_max_attempts, check_name

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_RETENTION_SECONDS = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Queue policy, the same on every backend.

    - `max_payload_bytes`: cap on an encoded payload or result (default 1 MiB).
    - `max_attempts`: executions allowed per item unless the item or its queue says otherwise.
    - `queue_max_attempts`: per-queue defaults, e.g. `{"emails": 10}`.
    - `backoff`: delay before a failed item's next attempt.
    - `retention_seconds`: finished items older than this are pruned automatically; 0 keeps them.
    - `auto_migrate`: create or upgrade the schema on first use (turn off when the role may not
      run DDL, and run `workclaim migrate` instead).
    - `strict_durability`: refuse a store configured so that a crash can lose acknowledged work.
    - `timeout`: deadline in seconds for one store call (connect, statement, busy lock).
    - `history`: keep a per-item attempt history (claimed, heartbeat, released, completed,
      failed, expired, requeued, cancelled); `queue_history` overrides it per queue, e.g.
      `{"firehose": False}` for the fastest path. Fixed per item when it is enqueued.
    - `log_payloads`: add payloads and results to the `workclaim.events` log records (off: they
      may hold personal data or secrets; see docs/configuration.md#logging).
    """

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_attempts: int = 5
    queue_max_attempts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    backoff: Backoff = field(default_factory=Backoff)
    retention_seconds: float = DEFAULT_RETENTION_SECONDS
    auto_migrate: bool = True
    strict_durability: bool = False
    timeout: float = 10.0
    history: bool = True
    queue_history: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    log_payloads: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_payload_bytes <= 512 * 1024 * 1024:
            raise ConfigError("max_payload_bytes must be between 1 byte and 512 MiB")
        try:
            check_max_attempts(self.max_attempts)
            frozen = {
                check_name(q, "queue name"): check_max_attempts(n)
                for q, n in self.queue_max_attempts.items()
            }
            history = {
                check_name(q, "queue name"): bool(on) for q, on in self.queue_history.items()
            }
        except ValidationError as exc:
            raise ConfigError(str(exc)) from exc
        object.__setattr__(self, "queue_max_attempts", MappingProxyType(frozen))
        object.__setattr__(self, "queue_history", MappingProxyType(history))
        if not 0 <= self.retention_seconds <= 10 * 366 * 86_400:
            raise ConfigError("retention_seconds must be between 0 (keep) and ten years")
        if not 0.05 <= self.timeout <= 3_600:
            raise ConfigError("timeout must be between 0.05 and 3600 seconds")

    def max_attempts_for(self, queue: str) -> int:
        """The default number of executions for a new item of this queue."""
        return self.queue_max_attempts.get(queue, self.max_attempts)

    def history_for(self, queue: str) -> bool:
        """Whether a new item of this queue keeps an attempt history."""
        return self.queue_history.get(queue, self.history)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `WORKCLAIM_*` variables; unset ones keep their defaults.

        WORKCLAIM_MAX_PAYLOAD_BYTES, WORKCLAIM_MAX_ATTEMPTS, WORKCLAIM_RETENTION_SECONDS,
        WORKCLAIM_AUTO_MIGRATE (1/0), WORKCLAIM_STRICT_DURABILITY (1/0), WORKCLAIM_TIMEOUT,
        WORKCLAIM_HISTORY (1/0), WORKCLAIM_LOG_PAYLOADS (1/0).
        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        casts: dict[str, tuple[str, Any]] = {
            "WORKCLAIM_MAX_PAYLOAD_BYTES": ("max_payload_bytes", int),
            "WORKCLAIM_MAX_ATTEMPTS": ("max_attempts", int),
            "WORKCLAIM_RETENTION_SECONDS": ("retention_seconds", float),
            "WORKCLAIM_AUTO_MIGRATE": ("auto_migrate", _parse_bool),
            "WORKCLAIM_STRICT_DURABILITY": ("strict_durability", _parse_bool),
            "WORKCLAIM_TIMEOUT": ("timeout", float),
            "WORKCLAIM_HISTORY": ("history", _parse_bool),
            "WORKCLAIM_LOG_PAYLOADS": ("log_payloads", _parse_bool),
        }
        for var, (name, cast) in casts.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                kwargs[name] = cast(raw)
            except ValueError as exc:
                raise ConfigError(f"{var}={raw!r} is not valid: {exc}") from exc
        return cls(**kwargs)


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")
