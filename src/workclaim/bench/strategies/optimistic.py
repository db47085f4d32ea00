"""`optimistic`: a version column and compare-and-set, retrying other candidates up to a bound.

Read a handful of unclaimed rows, try them in random order with `UPDATE ... WHERE version = ?`;
a failed compare-and-set moves on to the next candidate instead of sending the worker away, and
only after `MAX_TRIES` lost sets (or an exhausted read) does the attempt report `lost`. The spike
gave up after one lost set and counted that, and every "queue empty", as a failed attempt.
"""

from __future__ import annotations

from workclaim.backends._queryfile import load_queries
from workclaim.bench.strategies.base import LOST, ClaimResult
from workclaim.bench.strategies.table import PACKAGE, TableWorker, guarded_update, shuffled

Q = load_queries(PACKAGE, "optimistic.sql")
CANDIDATES = 8
MAX_TRIES = 8


class OptimisticWorker(TableWorker):
    """Compare-and-set on a version column, over a few candidates per attempt."""

    name = "optimistic"

    def claim(self, run: int, *, worker: str, limit: int, lease: float, wait: float) -> ClaimResult:
        tries = 0
        while tries < MAX_TRIES:
            found = self.candidates(run, CANDIDATES)
            if not found:
                return self.empty(wait) if tries == 0 else LOST
            for item_id, version in shuffled(found):
                tries += 1
                token = guarded_update(self.store, Q, item_id, worker, version)
                if token is not None:
                    return self.grant(item_id, token, worker)
                if tries >= MAX_TRIES:
                    break
        return LOST
