"""Recorded histories of queue operations, and the checker that verifies them.

- `recording`: the event format (one JSON line per event, each process its own file), the
  `Recorder` the races and fault runs write with, and `load_history`.
- `checking`: `check`, which derives the facts once and runs one function per invariant (the
  `CHECKS` registry, named as in `INVARIANTS`) over them.
- `command`: `python -m workclaim.bench.history FILES... [--final state.json]`.

The checker is O(n log n) and judges conservatively: a lease counts as held only over its
sure-held window, so a delay between the store and the client can hide a violation but never
invent one.
"""

from workclaim.bench.history.checking import (
    CHECKS,
    INVARIANTS,
    CheckResult,
    Grant,
    check,
    check_files,
)
from workclaim.bench.history.command import main
from workclaim.bench.history.recording import (
    ENDING_KINDS,
    FENCED_KINDS,
    FIELDS,
    KINDS,
    LOST_RACE,
    PHASES,
    Event,
    Op,
    Recorder,
    load_history,
)

__all__ = [
    "CHECKS",
    "ENDING_KINDS",
    "FENCED_KINDS",
    "FIELDS",
    "INVARIANTS",
    "KINDS",
    "LOST_RACE",
    "PHASES",
    "CheckResult",
    "Event",
    "Grant",
    "Op",
    "Recorder",
    "check",
    "check_files",
    "load_history",
    "main",
]
