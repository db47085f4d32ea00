"""Conversions between datetimes and the integer microseconds the stores keep."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """This host's clock as an aware UTC datetime."""
    return datetime.now(UTC)


def to_micros(dt: datetime) -> int:
    """Microseconds since the epoch for an aware datetime (naive ones are refused)."""
    if dt.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (use datetime.now(UTC))")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    """The aware UTC datetime for microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=us)


def now_micros() -> int:
    """This host's clock in microseconds since the epoch."""
    return time.time_ns() // 1_000


def seconds_to_micros(seconds: float) -> int:
    """A duration in float seconds as whole microseconds, rounded to nearest."""
    return round(seconds * 1_000_000)
