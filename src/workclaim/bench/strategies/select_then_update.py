"""`select-then-update`: the spike's pseudocode plus the row-count check it left out.

Read the first unclaimed row, then `UPDATE ... WHERE id = ? AND claimed_by IS NULL`. When the
update changes no row another worker won the race: the attempt reports `lost` and the worker's
loop tries again. It loses when many workers read the same first row at once.
"""

from __future__ import annotations

from workclaim.backends._queryfile import load_queries
from workclaim.bench.strategies.base import LOST, ClaimResult
from workclaim.bench.strategies.table import PACKAGE, TableWorker, guarded_update

Q = load_queries(PACKAGE, "select_then_update.sql")


class SelectThenUpdateWorker(TableWorker):
    """One read, one guarded update; a lost race is reported, not hidden."""

    name = "select-then-update"

    def claim(self, run: int, *, worker: str, limit: int, lease: float, wait: float) -> ClaimResult:
        found = self.candidates(run, 1)
        if not found:
            return self.empty(wait)
        item_id, version = found[0]
        token = guarded_update(self.store, Q, item_id, worker, version)
        return LOST if token is None else self.grant(item_id, token, worker)
