"""The task envelope: encode refuses non-JSON arguments by name; decode knows only envelopes."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from workclaim.errors import ValidationError
from workclaim.tasks.envelope import Call, decode_call, encode_call


def test_round_trip_with_trace() -> None:
    trace = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    payload = encode_call("m.send", ["a@example.org"], {"urgent": True}, trace=trace)
    assert payload == {
        "task": "m.send",
        "args": ["a@example.org"],
        "kwargs": {"urgent": True},
        "trace": trace,
    }
    assert decode_call(payload) == Call("m.send", ("a@example.org",), {"urgent": True}, trace)


def test_no_trace_key_without_trace() -> None:
    assert "trace" not in encode_call("m.f", (), {})
    assert decode_call(encode_call("m.f")) == Call("m.f")


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ([1, datetime(2026, 1, 1)], {}, "args[1]"),
        ([], {"when": {1, 2}}, "kwargs['when']"),
        ([math.nan], {}, "args[0]"),
        ([], {"x": "a\x00b"}, "kwargs['x']"),
    ],
)
def test_non_json_argument_is_refused_by_name(
    args: list[object], kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError, match=r"task m\.f argument " + named.replace("[", r"\[")):
        encode_call("m.f", args, kwargs)


@pytest.mark.parametrize("name", ["", " m.f", "m\nf", 3, "x" * 257])
def test_bad_task_name_is_refused(name: object) -> None:
    with pytest.raises(ValidationError, match="invalid task name"):
        encode_call(name, [], {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"to": "a@example.org"},
        {"task": "m.f", "args": []},
        {"task": "m.f", "args": [], "kwargs": {}, "extra": 1},
        {"task": 1, "args": [], "kwargs": {}},
        {"task": "m.f", "args": {}, "kwargs": {}},
        {"task": "m.f", "args": [], "kwargs": []},
        {"task": "m.f", "args": [], "kwargs": {}, "trace": {"traceparent": 1}},
    ],
)
def test_non_envelopes_decode_to_none(payload: object) -> None:
    assert decode_call(payload) is None
