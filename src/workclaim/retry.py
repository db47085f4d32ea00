"""The backoff policy: how long a failed item waits before its next attempt.

Pure: `attempt -> seconds`. Backends never compute backoff; they add the delay to their clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from workclaim.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with equal jitter: base * factor**(attempt-1), capped, then jittered.

    With `jitter=0.5` the delay lies in [d/2, d]; with 0 it is exactly d.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 3_600.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (self.base >= 0 and self.factor >= 1 and self.cap >= self.base):
            raise ConfigError("backoff needs base >= 0, factor >= 1 and cap >= base")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("backoff jitter must be between 0 and 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the given (1-based) attempt failed."""
        exponent = max(0, attempt - 1)
        raw = self.cap if exponent > 64 else min(self.cap, self.base * self.factor**exponent)
        if self.jitter == 0:
            return raw
        spread = raw * self.jitter
        return raw - spread + (rng or random).random() * spread
