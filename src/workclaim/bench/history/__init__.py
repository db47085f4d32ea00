"""Recorded histories of queue operations, and the checker that verifies them.

- `recording`: the event format (one JSON line per event, each process its own file), the
  `Recorder` the races and fault runs write with, and `load_history`.
- `checking`: `check`, which derives the facts once and runs one function per invariant (the
  `CHECKS` registry, named as in `INVARIANTS`) over them.
- `flow`: the flow-control invariants (concurrency, rate, pause), judged on the store's clock.
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
    POLICY_KINDS,
    Event,
    Op,
    Recorder,
    grant_fields,
    lease_end_facts,
    load_history,
    micros,
    policy_fields,
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
    "POLICY_KINDS",
    "CheckResult",
    "Event",
    "Grant",
    "Op",
    "Recorder",
    "check",
    "check_files",
    "grant_fields",
    "lease_end_facts",
    "load_history",
    "main",
    "micros",
    "policy_fields",
]
