"""What a handler gets (`Context`), and what the runtime keeps for each lease it holds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workclaim.models import Lease
from workclaim.worker._state import WORKING, LeasePhase


@dataclass
class Context:
    """What a handler gets: its lease, an event set when the lease is lost, and the time left.

    `lost` is set when a heartbeat finds the lease gone (expired, or reclaimed by someone
    else): stop and drop the result. `stopping` is set when the worker shuts down and the grace
    period is over: the lease has been released, so stop as soon as you can.
    """

    lease: Lease
    lost: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    _deadline: float = 0.0

    @property
    def token(self) -> int:
        """The lease's fencing token (pass it to side effects that can check it)."""
        return self.lease.token

    @property
    def attempt(self) -> int:
        """Which execution this is (1 for the first)."""
        return self.lease.attempt

    def time_left(self) -> float:
        """Seconds until the lease expires unless a heartbeat extends it, by this host's
        monotonic clock. Counted from when the claim or last heartbeat was *sent* (the store
        granted it later), so it errs short, never long: by the call's round trip, or by up to
        the long-poll wait after a claim that waited for work."""
        return max(0.0, self._deadline - time.monotonic())


Handler = Callable[[Context], Any]


@dataclass
class Running:
    """One lease being worked on (or finished and waiting for the claimer to report it)."""

    ctx: Context
    next_beat: float = 0.0
    phase: LeasePhase = WORKING
    result: Any = None
    warned_late: bool = False  # a late heartbeat was warned about (once per lease)
