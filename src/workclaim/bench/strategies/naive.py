"""`naive`: read a candidate, then update it with no guard. Wrong on purpose.

Two workers that read the same row both take it, under the same version, and both completions
are accepted. It lives only here, never in the public API: it shows the duplicates this makes and
proves the history checker catches them.
"""

from __future__ import annotations

from workclaim._time import now_micros
from workclaim.backends._queryfile import load_queries
from workclaim.bench.strategies.base import ClaimResult, Grant
from workclaim.bench.strategies.table import PACKAGE, TableWorker

Q = load_queries(PACKAGE, "naive.sql")


class NaiveWorker(TableWorker):
    """Unguarded read-then-write claim and completion."""

    name = "naive"

    def claim(self, run: int, *, worker: str, limit: int, lease: float, wait: float) -> ClaimResult:
        found = self.candidates(run, 1)
        if not found:
            return self.empty(wait)
        item_id, version = found[0]
        params = {"id": item_id, "worker": worker, "now": now_micros(), "version": version}
        rows, _ = self.store.run(self.store.query(Q, "claim"), params)
        return self.grant(item_id, int(rows[0][0]) if rows else version + 1, worker)

    def complete(self, grant: Grant) -> None:
        self.store.run(Q["complete"], {"id": grant.item_id})
