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
    # the peers on their home backends
    "pgqueuer": ("pgqueuer", {}),
    "procrastinate": ("procrastinate", {}),
    "huey": ("huey", {}),
    "saq": ("saq", {}),
    "rq": ("rq", {}),
}

# Which workclaim row each other row is compared with (ratios pair by pair, same repetition).
BASELINE_FOR_BACKEND = {
    "sqlite": "workclaim-sqlite",
    "postgres": "workclaim-postgres",
    "redis": "workclaim-redis",
}


def load(name: str) -> System:
    """Build the named system (in the driver or in a worker process)."""
    module_name, options = REGISTRY[name]
    module = importlib.import_module(f"systems.{module_name}")
    system: System = module.make(**options)
    system.name = name
    return system
