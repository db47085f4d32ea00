"""Opening a backend from a URL: `sqlite:///path`, `postgresql://...`, `redis://...`,
`mariadb://...` (or `mysql://...`)."""

from __future__ import annotations

import importlib
from typing import cast
from urllib.parse import urlsplit

from workclaim.backends.base import (
    Administration,
    Backend,
    Inspection,
    Leasing,
    Lifecycle,
    NewItem,
    NewSchedule,
    Scheduling,
    TransactionalEnqueue,
)
from workclaim.config import Settings
from workclaim.errors import ConfigError

__all__ = [
    "Administration",
    "Backend",
    "Inspection",
    "Leasing",
    "Lifecycle",
    "NewItem",
    "NewSchedule",
    "Scheduling",
    "TransactionalEnqueue",
    "open_backend",
]

# scheme -> (module, class, extra that installs its driver)
_BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "sqlite": ("workclaim.backends.sqlite.backend", "SqliteBackend", None),
    "postgresql": ("workclaim.backends.postgres.backend", "PostgresBackend", "postgres"),
    "postgres": ("workclaim.backends.postgres.backend", "PostgresBackend", "postgres"),
    "redis": ("workclaim.backends.redis.backend", "RedisBackend", "redis"),
    "rediss": ("workclaim.backends.redis.backend", "RedisBackend", "redis"),
    "mariadb": ("workclaim.backends.mariadb.backend", "MariadbBackend", "mariadb"),
    "mysql": ("workclaim.backends.mariadb.backend", "MariadbBackend", "mariadb"),
}


def open_backend(url: str, settings: Settings) -> Backend:
    """The backend for `url`; a missing driver names the extra to install."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"not a database URL: {url!r}; use sqlite:///path.db, sqlite:///:memory:, "
            "postgresql://user@host/db, redis://host:6379/0 or mariadb://user@host:3306/db"
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _BACKENDS:
        raise ConfigError(
            f"unknown URL scheme {scheme!r}; workclaim speaks sqlite://, postgresql://, "
            "redis:// (or rediss://) and mariadb:// (or mysql://)"
        )
    module_name, class_name, extra = _BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or (exc.name or "").startswith("workclaim"):
            raise
        raise ConfigError(
            f"the {scheme} backend needs {exc.name}, which is not installed: "
            f"pip install 'workclaim[{extra}]'"
        ) from exc
    return cast(Backend, getattr(module, class_name)(url, settings))
