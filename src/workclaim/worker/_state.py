"""Where a worker is in its life, and where each lease it holds is in its own.

One value each instead of a handful of flags, so no combination can say two things at once.
The members are also bound to module names (`RUNNING`, `WORKING`, ...): the hot paths compare
against those, which is a plain global read where `WorkerState.RUNNING` is an enum lookup.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class WorkerState(Enum):
    """The worker's lifecycle; it only ever moves down this list (values in that order)."""

    READY = 0  # built, `run()` not called yet
    RUNNING = 1  # claiming and handling items
    DRAINING = 2  # stop() called: no more claims, in-flight work has the grace period
    STOPPING = 3  # grace over: what is left released, reports under way end
    STOPPED = 4  # run() returned (or is returning); a later run() only shuts down again


class LeasePhase(Enum):
    """One held lease: its handler works, then the item is reported, or shutdown gives it back."""

    WORKING = "working"  # the handler runs; heartbeats keep the lease
    FINISHING = "finishing"  # the handler returned: completion or failure on its way
    RELEASED = "released"  # shutdown released it: the handler's outcome is dropped


class Outcome(StrEnum):
    """How a lease ended, as `Worker(on_finished=...)` hears it: after the store acknowledged a
    completion, failure (retried or dead) or release, or once the lease was found lost."""

    COMPLETED = "completed"
    FAILED = "failed"
    RELEASED = "released"
    LOST = "lost"


READY = WorkerState.READY
RUNNING = WorkerState.RUNNING
DRAINING = WorkerState.DRAINING
STOPPING = WorkerState.STOPPING
STOPPED = WorkerState.STOPPED

WORKING = LeasePhase.WORKING
FINISHING = LeasePhase.FINISHING
RELEASED = LeasePhase.RELEASED
