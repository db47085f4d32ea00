"""Checks every argument before it reaches a store, so all backends accept exactly the same inputs.

Payloads are encoded once here (compact JSON, `allow_nan=False`) and handed to backends as text;
NUL characters and lone surrogates are refused because PostgreSQL cannot store them, and nesting
deeper than `MAX_JSON_DEPTH` because no answer (a lease, an item over HTTP) could carry it back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from workclaim.errors import PayloadTooLarge, ValidationError
from workclaim.models import QueuePolicy, Rate

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
# A JSON escape \u0000 preceded by an even number of backslashes is a real NUL character.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

MAX_LEASE_SECONDS = 7 * 86_400.0
MIN_LEASE_SECONDS = 0.01
MAX_DELAY_SECONDS = 366 * 86_400.0
MAX_WAIT_SECONDS = 3_600.0
MAX_BATCH = 1_000
MAX_ATTEMPTS_LIMIT = 1_000_000
PRIORITY_MIN = -(2**31)
PRIORITY_MAX = 2**31 - 1
MAX_ERROR_CHARS = 65_536
MAX_ID = 2**53 - 1
# Flow control: the most a concurrency limit or a rate's count may be, and the longest window
# (a store keeps one record per claim of a rate-limited queue or group for a window's length).
MAX_LIMIT = 1_000_000
MAX_RATE_WINDOW_SECONDS = 86_400.0
# Arrays and objects nested in a payload or result, at most. An answer wraps a payload in a few
# levels of its own (`{"leases": [{"payload": ...}]}`), and JSON readers cap the total depth (the
# server's encoder at 255, Ruby's parser at 100, serde_json at 128): 64 leaves room for all.
MAX_JSON_DEPTH = 64
# The times an item may be scheduled at (UTC). Every store can keep them, a delay added to them
# stays in range, and they read back as datetimes: Redis keeps microseconds within +-2**53
# (years 1685 to 2255), Python's datetime ends at year 9999 (in UTC, not in the given offset).
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def check_name(value: object, what: str) -> str:
    """A queue, worker or dedupe name: 1-128 of letters, digits and `_ . : -`, not starting with
    punctuation."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ValidationError(
            f"invalid {what} {value!r}: use 1-128 characters from A-Z a-z 0-9 _ . : - "
            "starting with a letter or digit"
        )
    return value


def check_group(value: object) -> str | None:
    """A flow-control group key: a name like a queue's, or None (the queue's default group)."""
    return None if value is None else check_name(value, "group")


def check_flag(value: object, what: str) -> bool:
    """A flag: exactly True or False (not 1, "yes" or None)."""
    if not isinstance(value, bool):
        raise ValidationError(f"invalid {what} {value!r}: give true or false")
    return value


def check_limit(value: object, what: str) -> int | None:
    """A concurrency limit: None (no limit) or 1 or more (pause a queue to stop it instead)."""
    return None if value is None else check_int(value, what, low=1, high=MAX_LIMIT)


def check_rate(value: object, what: str) -> Rate | None:
    """A rate limit: None or `(count, per_seconds)`, count >= 1, window up to a day."""
    if value is None:
        return None
    if isinstance(value, Rate):
        value = (value.count, value.per_seconds)
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValidationError(f"{what} must be (count, per_seconds), got {value!r}")
    count = check_int(value[0], f"{what} count", low=1, high=MAX_LIMIT)
    per = check_seconds(
        value[1], f"{what} window", low=0.0, high=MAX_RATE_WINDOW_SECONDS, low_open=True
    )
    return Rate(count, per)


def check_policy(
    queue: object,
    concurrency: object,
    group_concurrency: object,
    rate: object,
    group_rate: object,
) -> QueuePolicy:
    """A queue's limits, validated (`paused` is set apart, by pause and resume)."""
    return QueuePolicy(
        queue=check_name(queue, "queue name"),
        concurrency=check_limit(concurrency, "concurrency"),
        group_concurrency=check_limit(group_concurrency, "group_concurrency"),
        rate=check_rate(rate, "rate"),
        group_rate=check_rate(group_rate, "group_rate"),
    )


def check_queues(queues: str | Sequence[str]) -> tuple[str, ...]:
    """One queue name or a non-empty list of them, deduplicated in the given order."""
    if isinstance(queues, str):
        names: tuple[object, ...] = (queues,)
    elif isinstance(queues, list | tuple):
        names = tuple(queues)
    else:
        raise ValidationError(f"invalid queue name {queues!r}: give a name or a list of names")
    if not names:
        raise ValidationError("claim needs at least one queue name")
    return tuple(dict.fromkeys(check_name(q, "queue name") for q in names))


def encode_json(value: Any, *, what: str, max_bytes: int) -> str:
    """Compact JSON text for a payload or result; refuses NaN, NUL, lone surrogates, oversize."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise _too_deep(what) from None
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} is not JSON-serialisable: {exc}") from exc
    if too_deep(text):
        raise _too_deep(what)
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise ValidationError(f"{what} contains a NUL character (\\u0000), which no store accepts")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{what} contains a lone surrogate and is not valid UTF-8") from exc
    if size > max_bytes:
        raise PayloadTooLarge(f"{what} is {size} bytes, over the cap of {max_bytes} bytes")
    return text


def too_deep(text: str) -> bool:
    """Whether arrays and objects nest more than `MAX_JSON_DEPTH` deep in JSON text. Cheap for
    the usual payload: text with no more brackets than the limit cannot be, and is not scanned."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH


def _too_deep(what: str) -> ValidationError:
    return ValidationError(
        f"{what} nests arrays and objects more than {MAX_JSON_DEPTH} deep; flatten it"
    )


def encode_payloads(payloads: Iterable[Any], *, max_bytes: int) -> list[str]:
    """Encode every payload of a batch, naming the index of the first bad one."""
    out: list[str] = []
    for i, payload in enumerate(payloads):
        out.append(encode_json(payload, what=f"payload #{i}", max_bytes=max_bytes))
    return out


def check_seconds(value: object, what: str, *, low: float, high: float, low_open: bool) -> float:
    """A finite duration in seconds within bounds (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{what} must be a number of seconds, got {value!r}")
    seconds = float(value)
    too_low = seconds <= low if low_open else seconds < low
    if not math.isfinite(seconds) or too_low or seconds > high:
        bound = f"more than {low}" if low_open else f"at least {low}"
        raise ValidationError(f"{what} must be {bound} and at most {high} seconds, got {value!r}")
    return seconds


def check_lease(value: object) -> float:
    """A lease length: at least 10 ms, at most 7 days."""
    return check_seconds(
        value, "lease", low=MIN_LEASE_SECONDS, high=MAX_LEASE_SECONDS, low_open=False
    )


def check_delay(value: object, what: str = "delay") -> float:
    """A delay: zero or more seconds, at most 366 days."""
    return check_seconds(value, what, low=0.0, high=MAX_DELAY_SECONDS, low_open=False)


def check_wait(value: object) -> float:
    """A claim's wait: zero (do not wait) up to an hour."""
    return check_seconds(value, "wait", low=0.0, high=MAX_WAIT_SECONDS, low_open=False)


def check_time(value: object, what: str = "run_at") -> datetime:
    """A timezone-aware datetime within `EARLIEST_TIME`..`LATEST_TIME` once in UTC, returned in
    UTC; a time outside could be stored but never read back."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(f"{what} must be a timezone-aware datetime")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_TIME <= utc <= LATEST_TIME:
        raise ValidationError(
            f"{what} must be between {EARLIEST_TIME.isoformat()} and {LATEST_TIME.isoformat()} "
            f"in UTC, got {value.isoformat()}"
        )
    return utc


def check_due(now: datetime | None, delay: float, what: str = "delay") -> None:
    """`now + delay` (a time a store will compute) stays within range. Only a given `now` (a
    test clock) can push it out: the store's own clock plus a capped delay cannot."""
    if now is None:
        return
    try:
        due = check_time(now, "now") + timedelta(seconds=delay)
    except OverflowError:
        due = None
    if due is None or due > LATEST_TIME:
        raise ValidationError(f"{what} of {delay} seconds from {now.isoformat()} is out of range")


def check_int(value: object, what: str, *, low: int, high: int) -> int:
    """An integer within bounds (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_priority(value: object) -> int:
    """A priority: a 32-bit signed integer; lower runs first."""
    return check_int(value, "priority", low=PRIORITY_MIN, high=PRIORITY_MAX)


def check_max_attempts(value: object) -> int:
    """How many executions an item may have: 1 or more."""
    return check_int(value, "max_attempts", low=1, high=MAX_ATTEMPTS_LIMIT)


def check_batch(value: object, what: str = "limit") -> int:
    """How many leases one claim (or rows one listing) may return."""
    return check_int(value, what, low=1, high=MAX_BATCH)


def check_id(value: object) -> int:
    """An item id: a positive integer below 2**53."""
    return check_int(value, "item id", low=1, high=MAX_ID)


def clip_error(error: object) -> str:
    """A failure message as text, cut to a bounded length so one bad job cannot bloat the store."""
    text = error if isinstance(error, str) else repr(error)
    text = text.replace("\x00", "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 15] + "... [truncated]"
    return text
