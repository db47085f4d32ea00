"""Raw baselines for benchmarks: the bare claim and completion through the driver, no library.

Each module `<backend>.py` (picked by URL scheme) offers:

    prefill(url, n)      reset its own store (own table/keys) and insert n no-op items
    open_worker(url)     a RawWorker: claim(batch) -> [(id, token)], complete(id, token), close()
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol
from urllib.parse import urlsplit

_MODULES = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "redis": "redis",
    "rediss": "redis",
    "mariadb": "mariadb",
    "mysql": "mariadb",
}


class RawWorker(Protocol):
    """One worker's connection to a raw store."""

    def claim(self, batch: int) -> list[tuple[int, int]]: ...

    def complete(self, item_id: int, token: int) -> None: ...

    def close(self) -> None: ...


def module_for(url: str) -> ModuleType:
    """The raw baseline module for a URL's scheme."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _MODULES:
        raise ValueError(f"no raw baseline for {scheme!r} URLs")
    return importlib.import_module(f"benchmarks.raw.{_MODULES[scheme]}")
