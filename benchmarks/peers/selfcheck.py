"""Self-check of the benchmark's history check: it must flag duplicates, missing and unexpected
ids, both in `verify` directly and end to end through real worker processes.

    benchmarks/peers/.venv/bin/python benchmarks/peers/selfcheck.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def check_verify() -> None:
    clean = harness.verify(range(4), [[0, 2], [1, 3]], 4)
    assert (clean.duplicates, clean.missing, clean.unexpected) == (0, 0, 0), clean
    dup = harness.verify(range(4), [[0, 2], [1, 3, 2]], 4)
    assert (dup.duplicates, dup.missing, dup.processed) == (1, 0, 5), dup
    gap = harness.verify(range(4), [[0], [1, 9]], 4)
    assert (gap.duplicates, gap.missing, gap.unexpected) == (0, 2, 1), gap
    counted = harness.verify(None, [[7, 8], [8]], 3)
    assert (counted.duplicates, counted.missing) == (1, 1), counted


def check_end_to_end() -> None:
    with tempfile.TemporaryDirectory(prefix="peers-selfcheck-") as tmp:
        env = {"sqlite_dir": tmp}
        row = harness.run_once("selfcheck-duplicate", env, workers=2, items=200, timeout=120)
        assert row.get("error") is None, row
        assert row["duplicates"] == 2 and row["missing"] == 0, row  # one injected per worker
        clean = harness.run_once("workclaim-sqlite", env, workers=2, items=200, timeout=120)
        assert clean["duplicates"] == 0 and clean["missing"] == 0, clean


if __name__ == "__main__":
    check_verify()
    check_end_to_end()
    print("selfcheck: the history check flags injected duplicates and missing items")
