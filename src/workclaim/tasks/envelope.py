"""The payload every task item carries: which task to run, its JSON arguments, a trace context.

    {"task": "myapp.tasks.send_email", "args": ["a@example.org"], "kwargs": {"urgent": true},
     "trace": {"traceparent": "00-...-...-01", "tracestate": "..."}}

`trace` is optional (W3C trace context, filled by the OpenTelemetry integration). The shape is
shared by `workclaim.tasks`, the Django backend and tracing, so it lives in one module. A payload
with other keys, or without `task`, `args` and `kwargs`, is not a task envelope: `decode_call`
returns None for it rather than guessing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workclaim.errors import ValidationError
from workclaim.validation import encode_json

MAX_TASK_NAME = 256
_KEYS = frozenset({"task", "args", "kwargs"})
_OPTIONAL_KEYS = frozenset({"trace"})


@dataclass(frozen=True, slots=True)
class Call:
    """One decoded task call: the task's name, positional and keyword arguments, trace context."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    trace: Mapping[str, str] | None = None


def check_task_name(name: object) -> str:
    """A task name: a non-empty string of printable characters, at most `MAX_TASK_NAME` long."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_TASK_NAME
        or not name.isprintable()
        or name != name.strip()
    ):
        raise ValidationError(
            f"invalid task name {name!r}: use 1-{MAX_TASK_NAME} printable characters "
            "without leading or trailing spaces"
        )
    return name


def encode_call(
    name: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    trace: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The envelope for a call of task `name`; refuses an argument that is not JSON, naming it
    (`args[1]`, `kwargs['when']`), before anything is written."""
    check_task_name(name)
    kwargs = {} if kwargs is None else kwargs
    for index, value in enumerate(args):
        _check_argument(name, f"args[{index}]", value)
    for key, value in kwargs.items():
        if not isinstance(key, str):
            raise ValidationError(f"task {name}: keyword {key!r} is not a string")
        _check_argument(name, f"kwargs[{key!r}]", value)
    envelope: dict[str, Any] = {"task": name, "args": list(args), "kwargs": dict(kwargs)}
    if trace is not None:
        envelope["trace"] = _check_trace(trace)
    return envelope


def decode_call(payload: object) -> Call | None:
    """The call a payload describes, or None when the payload is not a task envelope."""
    if not isinstance(payload, dict):
        return None
    keys = payload.keys()
    if not keys >= _KEYS or not keys <= _KEYS | _OPTIONAL_KEYS:
        return None
    name, args, kwargs = payload["task"], payload["args"], payload["kwargs"]
    if not isinstance(name, str) or not isinstance(args, list) or not isinstance(kwargs, dict):
        return None
    trace = payload.get("trace")
    if trace is not None and not _is_trace(trace):
        return None
    return Call(task=name, args=tuple(args), kwargs=kwargs, trace=trace)


def _check_argument(task: str, label: str, value: object) -> None:
    """Refuse a value JSON cannot carry (or carry back unchanged: NaN, NUL, too deep)."""
    encode_json(value, what=f"task {task} argument {label}", max_bytes=sys.maxsize)


def _is_trace(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _check_trace(trace: Mapping[str, str]) -> dict[str, str]:
    out = dict(trace)
    if not _is_trace(out):
        raise ValidationError("trace must map strings to strings (traceparent, tracestate)")
    return out
