"""The systems the peer benchmark drives: workclaim, its peers and the raw baselines.

Each module exposes `make(**options) -> System`; `REGISTRY` names every row the benchmark can
produce as (module, options), so worker processes rebuild the same system from a picklable spec.
"""

from __future__ import annotations

import importlib
from typing import Any

from systems.base import System

# name -> (module under systems/, options for its make())
REGISTRY: dict[str, tuple[str, dict[str, Any]]] = {
    # workclaim through its public Queue API: claim+complete loops, one item or a batch per claim
    "workclaim-sqlite": ("workclaim_queue", {"backend": "sqlite", "batch": 1}),
    "workclaim-sqlite-batch": ("workclaim_queue", {"backend": "sqlite", "batch": 16}),
    "workclaim-postgres": ("workclaim_queue", {"backend": "postgres", "batch": 1}),
    "workclaim-postgres-batch": ("workclaim_queue", {"backend": "postgres", "batch": 16}),
    "workclaim-redis": ("workclaim_queue", {"backend": "redis", "batch": 1}),
    "workclaim-redis-batch": ("workclaim_queue", {"backend": "redis", "batch": 16}),
    "workclaim-mariadb": ("workclaim_queue", {"backend": "mariadb", "batch": 1}),
    "workclaim-mariadb-batch": ("workclaim_queue", {"backend": "mariadb", "batch": 16}),
    # workclaim's worker runtime: the fused path (complete_and_claim, adaptive batch), handler
    # threads; attempt history on (the default), and off
    "workclaim-worker-sqlite": ("workclaim_worker", {"backend": "sqlite"}),
    "workclaim-worker-postgres": ("workclaim_worker", {"backend": "postgres"}),
    "workclaim-worker-redis": ("workclaim_worker", {"backend": "redis"}),
    "workclaim-worker-mariadb": ("workclaim_worker", {"backend": "mariadb"}),
    "workclaim-worker-sqlite-nohistory": (
        "workclaim_worker",
        {"backend": "sqlite", "history": False},
    ),
    "workclaim-worker-postgres-nohistory": (
        "workclaim_worker",
        {"backend": "postgres", "history": False},
    ),
    "workclaim-worker-redis-nohistory": (
        "workclaim_worker",
        {"backend": "redis", "history": False},
    ),
    "workclaim-worker-mariadb-nohistory": (
        "workclaim_worker",
        {"backend": "mariadb", "history": False},
    ),
    # the peers on their home backends (none has a built-in MariaDB storage: README.md)
    "pgqueuer": ("pgqueuer", {}),
    "procrastinate": ("procrastinate", {}),
    "huey": ("huey", {}),
    "saq": ("saq", {}),
    "rq": ("rq", {}),
    # the raw baselines: bare SQL / Lua claim and completion, no library
    "raw-sqlite": ("raw", {"backend": "sqlite", "batch": 1}),
    "raw-sqlite-batch": ("raw", {"backend": "sqlite", "batch": 16}),
    "raw-postgres": ("raw", {"backend": "postgres", "batch": 1}),
    "raw-postgres-batch": ("raw", {"backend": "postgres", "batch": 16}),
    "raw-redis": ("raw", {"backend": "redis", "batch": 1}),
    "raw-redis-batch": ("raw", {"backend": "redis", "batch": 16}),
    "raw-mariadb": ("raw", {"backend": "mariadb", "batch": 1}),
    "raw-mariadb-batch": ("raw", {"backend": "mariadb", "batch": 16}),
}


def reference(name: str, backend: str, present: set[str]) -> str | None:
    """The workclaim row `name` is compared with (ratios pair by pair, same repetition): a raw
    baseline with workclaim's Queue row of the same claim size; a peer with workclaim's worker
    runtime when it ran, else its single-claim Queue row; workclaim's own rows with nothing."""
    if name.startswith("workclaim"):
        return None
    if name.startswith("raw-"):
        return "workclaim-" + name.removeprefix("raw-")
    runtime = f"workclaim-worker-{backend}"
    return runtime if runtime in present else f"workclaim-{backend}"


# Rows run only when named in --systems (or with --systems all+extra): the runtime without the
# fused path (claim, then complete per item), to show what the fused path buys.
EXTRA: dict[str, tuple[str, dict[str, Any]]] = {
    f"workclaim-worker-{b}-unfused": ("workclaim_worker", {"backend": b, "fused": False})
    for b in ("sqlite", "postgres", "redis", "mariadb")
}

# Not part of a run: a system that injects a duplicate, for `selfcheck.py`.
HIDDEN: dict[str, tuple[str, dict[str, Any]]] = {"selfcheck-duplicate": ("selfcheck", {})}


def load(name: str) -> System:
    """Build the named system (in the driver or in a worker process)."""
    module_name, options = REGISTRY.get(name) or EXTRA.get(name) or HIDDEN[name]
    module = importlib.import_module(f"systems.{module_name}")
    system: System = module.make(**options)
    system.name = name
    return system
