"""Flow control's argument checks, without a store: group keys, limits, rates, whole policies."""

from __future__ import annotations

import math
from typing import Any

import pytest

from workclaim import QueuePolicy, Rate, ValidationError
from workclaim.validation import (
    MAX_LIMIT,
    MAX_RATE_WINDOW_SECONDS,
    check_group,
    check_limit,
    check_policy,
    check_rate,
)


@pytest.mark.parametrize("group", ["a", "Z9", "tenant-42", "t.42:x-y_z", "x" * 128])
def test_a_group_is_a_name(group: str) -> None:
    assert check_group(group) == group


def test_no_group_is_the_default_group() -> None:
    assert check_group(None) is None


@pytest.mark.parametrize("group", ["", " a", "a b", "-a", "x" * 129, "é", 42, b"a", ["a"], True])
def test_a_bad_group_is_refused_by_name(group: Any) -> None:
    with pytest.raises(ValidationError, match="group"):
        check_group(group)


@pytest.mark.parametrize("limit", [None, 1, 2, 64, MAX_LIMIT])
def test_good_limits(limit: int | None) -> None:
    assert check_limit(limit, "concurrency") == limit


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, 1.0, 1.5, "3", True, False, math.nan])
def test_bad_limits_are_refused_naming_the_limit(limit: Any) -> None:
    with pytest.raises(ValidationError, match="group_concurrency"):
        check_limit(limit, "group_concurrency")


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (None, None),
        ((1, 1), Rate(1, 1.0)),
        ([5, 0.5], Rate(5, 0.5)),
        (Rate(100, 60), Rate(100, 60.0)),
        ((MAX_LIMIT, MAX_RATE_WINDOW_SECONDS), Rate(MAX_LIMIT, 86_400.0)),
        ((1, 1e-6), Rate(1, 1e-6)),
    ],
)
def test_good_rates(rate: Any, expected: Rate | None) -> None:
    checked = check_rate(rate, "rate")
    assert checked == expected
    assert checked is None or isinstance(checked.per_seconds, float)


@pytest.mark.parametrize(
    "rate",
    [
        (0, 1),
        (-1, 1),
        (MAX_LIMIT + 1, 1),
        (1.5, 1),
        (True, 1),
        ("1", 1),
        (1, 0),
        (1, -1),
        (1, MAX_RATE_WINDOW_SECONDS + 0.001),
        (1, math.nan),
        (1, math.inf),
        (1, True),
        (1, "1"),
        (1,),
        (1, 2, 3),
        (),
        "1/s",
        1,
        {"count": 1, "per_seconds": 1},
        Rate(0, 1),
        Rate(1, 0),
    ],
)
def test_bad_rates_are_refused_naming_the_rate(rate: Any) -> None:
    with pytest.raises(ValidationError, match="group_rate"):
        check_rate(rate, "group_rate")


def test_a_policy_is_checked_whole() -> None:
    assert check_policy("jobs", None, None, None, None) == QueuePolicy("jobs")
    assert check_policy("jobs", 4, 1, (10, 1), [2, 0.5]) == QueuePolicy(
        "jobs", 4, 1, Rate(10, 1.0), Rate(2, 0.5), paused=False
    )


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("bad queue", None, None, None, None), "queue"),
        (("jobs", 0, None, None, None), "concurrency"),
        (("jobs", None, 0, None, None), "group_concurrency"),
        (("jobs", None, None, (1, 0), None), "rate"),
        (("jobs", None, None, None, (0, 1)), "group_rate"),
    ],
)
def test_a_bad_policy_is_refused_naming_what_is_wrong(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        check_policy(*args)


def test_limited_says_whether_anything_applies() -> None:
    assert not QueuePolicy("jobs").limited
    assert QueuePolicy("jobs", paused=True).limited
    assert QueuePolicy("jobs", concurrency=1).limited
    assert QueuePolicy("jobs", group_concurrency=1).limited
    assert QueuePolicy("jobs", rate=Rate(1, 1)).limited
    assert QueuePolicy("jobs", group_rate=Rate(1, 1)).limited
