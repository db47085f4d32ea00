"""`benchmarks.claim_throughput` with items that keep no attempt history, to compare with the
default (history on). The flag is stored per item at enqueue, which the driver process does, so
patching the driver's default Settings is enough; the worker processes obey the stored flag.

    python -m benchmarks.history_off --url 'postgresql://...?schema=wc_x' --workers 1,10 ...
"""

from __future__ import annotations

import sys

from benchmarks import claim_throughput

import workclaim.queue
from workclaim.config import Settings


def _no_history() -> Settings:
    return Settings(history=False)


if __name__ == "__main__":
    setattr(workclaim.queue, "Settings", _no_history)  # noqa: B010 (a patch, on purpose)
    sys.exit(claim_throughput.main())
