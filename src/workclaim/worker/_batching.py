"""How many items the claimer asks for, and when a turn is worth making.

The claimer adapts its batch like TCP's window: it doubles while full batches keep coming and
shrinks to what the queue had. Before each turn it may linger a little (at most half a recent
round trip, cf. Nagle, group commit) for more handlers to finish, so a turn carries a batch of
finished items instead of the first one. Everything here is pure arithmetic over counts and
times: the runtime holds the lock and does the waiting.
"""

from __future__ import annotations

from enum import Enum

MAX_LINGER = 0.02  # seconds: the longest a turn waits for more handlers to finish


class Turn(Enum):
    """What the claimer should do before its next round trip."""

    GO = "go"  # worth making now
    LINGER = "linger"  # wait up to the linger time for more handlers to finish
    BLOCKED = "blocked"  # no capacity and nothing to report: wait for a handler to finish


GO = Turn.GO
LINGER = Turn.LINGER
BLOCKED = Turn.BLOCKED


class BatchSizer:
    """The adaptive claim size (1 up to `max_batch`) and the linger time (an average of half
    the fused round trip, capped at `MAX_LINGER`; negative until the first one is timed)."""

    __slots__ = ("linger", "max_batch", "size")

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self.size = 1
        self.linger = -1.0

    def next_size(self, asked: int, got: int) -> int:
        """The size after a claim that asked for `asked` and got `got`: twice as large (up to
        `max_batch`) when it came back full, else what the queue had (at least 1)."""
        if got >= asked:
            return min(self.max_batch, max(1, self.size * 2))
        return max(1, got)

    def next_linger(self, round_trip: float) -> float:
        """The linger time after a fused round trip of `round_trip` seconds: half of it at
        first, then a moving average (weight 0.2 on the new half), never above `MAX_LINGER`."""
        half = round_trip / 2
        return min(MAX_LINGER, half if self.linger < 0 else 0.8 * self.linger + 0.2 * half)

    def adapt(self, asked: int, got: int) -> None:
        """Resize after a claim (see `next_size`)."""
        self.size = self.next_size(asked, got)

    def timed(self, round_trip: float) -> None:
        """Fold a fused round trip's duration into the linger time (see `next_linger`)."""
        self.linger = self.next_linger(round_trip)

    def turn(self, *, free: int, finished: int, running: int, dry: bool) -> Turn:
        """Whether to make the round trip now. `free`: handler threads free once the finished
        items are handed over; `finished`: items waiting to be reported; `running`: leases
        held (finished ones included); `dry`: the last claim came back empty (a long poll
        needs no company). Go when a full batch of capacity is free or every held lease has
        finished; otherwise linger."""
        if not finished and free <= 0:
            return BLOCKED
        if dry and not finished:
            return GO
        if free >= self.size or running == finished:
            return GO
        return LINGER

    def linger_left(self, since: float, now: float) -> float:
        """Seconds of lingering left for a turn that started lingering at `since`."""
        return since + max(self.linger, 0.0) - now
