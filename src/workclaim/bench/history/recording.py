"""Writing histories: the event format, a per-process `Recorder`, and `load_history`.

Every worker process appends JSON lines to its own file, one event per line:

    {op_id, process, kind, phase, t_mono_ns, item_id, token, worker, lease_seconds,
     expires_at_us, error, status, queue, group, policy, ended_at_us}

`kind` is enqueue | claim | heartbeat | complete | release | fail, or for flow control policy |
pause | resume (invoke events name the `queue`; a policy's invoke carries the `policy` it sets);
`phase` is invoke for the call and ok | fail | info for its outcome (one outcome event per item a
claim or enqueue returned, all sharing the op's id). A timeout or connection error is `info`: the
call may or may not have taken effect, and the checker assumes nothing about it. `t_mono_ns` is
`time.monotonic_ns()`, which on Linux is one clock for every process of the host, so events of
different processes compare.

A claim's ok event carries the lease's `queue`, `group` (absent: the default group),
`lease_seconds` and `expires_at_us` (store clock), so the store-clock time of the claim is
`expires_at_us - lease_seconds`. The store-clock end of a lease cannot be known by its holder; it
is read after the run from the item's attempt history and recorded as an `ended` fact (one ok
event with no invoke: `item_id`, `token`, and `ended_at_us` when an event of the history ended
the lease; without it the lease ran until it expired). See `lease_end_facts`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from workclaim.models import HistoryEvent, Lease, QueuePolicy

KINDS = (
    "enqueue",
    "claim",
    "heartbeat",
    "complete",
    "release",
    "fail",
    "policy",
    "pause",
    "resume",
    "ended",
)
POLICY_KINDS = ("policy", "pause", "resume")
PHASES = ("invoke", "ok", "fail", "info")
ENDING_KINDS = ("complete", "release", "fail")
FENCED_KINDS = ("heartbeat", "complete", "release", "fail")
FIELDS = (
    "op_id",
    "process",
    "kind",
    "phase",
    "t_mono_ns",
    "item_id",
    "token",
    "worker",
    "lease_seconds",
    "expires_at_us",
    "error",
    "status",
    "queue",
    "group",
    "policy",
    "ended_at_us",
)
LOST_RACE = "lost race"  # the `error` of a claim:fail that lost a race for a candidate

Event = dict[str, Any]


def _now_ns() -> int:
    return time.monotonic_ns()


@dataclass(frozen=True, slots=True)
class Op:
    """A call in progress: what the recorder needs to write its outcome."""

    op_id: str
    kind: str
    item_id: int | None
    token: int | None
    worker: str | None


class Recorder:
    """Appends one process's events to its own JSON-lines file (never shared between processes).

    >>> with Recorder(path, process="w-1") as rec:
    ...     op = rec.invoke("claim", worker="w-1", lease_seconds=30.0)
    ...     rec.ok(op, item_id=7, token=12, lease_seconds=30.0)
    """

    def __init__(self, path: str | Path, process: str) -> None:
        self.path = Path(path)
        self.process = process
        self._file: IO[str] = self.path.open("a", encoding="utf-8", buffering=1 << 16)
        self._counter = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the file. Idempotent."""
        if not self._file.closed:
            self._file.close()

    def flush(self) -> None:
        """Push buffered events to the file (before another process reads it)."""
        self._file.flush()

    def _write(self, event: Event) -> None:
        line = json.dumps({k: v for k, v in event.items() if v is not None}, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")

    def invoke(
        self,
        kind: str,
        *,
        item_id: int | None = None,
        token: int | None = None,
        worker: str | None = None,
        lease_seconds: float | None = None,
        t_mono_ns: int | None = None,
        **fields: Any,
    ) -> Op:
        """Record the start of a call; returns the handle for its outcome. `fields`: more of
        `FIELDS` (a policy op's `queue` and `policy`)."""
        with self._lock:
            self._counter += 1
            op_id = f"{self.process}:{self._counter}"
        self._write(
            {
                "op_id": op_id,
                "process": self.process,
                "kind": kind,
                "phase": "invoke",
                "t_mono_ns": _now_ns() if t_mono_ns is None else t_mono_ns,
                "item_id": item_id,
                "token": token,
                "worker": worker,
                "lease_seconds": lease_seconds,
                **fields,
            }
        )
        return Op(op_id, kind, item_id, token, worker)

    def outcome(self, op: Op, phase: str, *, t_mono_ns: int | None = None, **fields: Any) -> None:
        """Record one outcome event of `op` (ok, fail or info)."""
        event: Event = {
            "op_id": op.op_id,
            "process": self.process,
            "kind": op.kind,
            "phase": phase,
            "t_mono_ns": _now_ns() if t_mono_ns is None else t_mono_ns,
            "item_id": op.item_id,
            "token": op.token,
            "worker": op.worker,
        }
        event.update(fields)
        self._write(event)

    def ok(self, op: Op, *, t_mono_ns: int | None = None, **fields: Any) -> None:
        """The call succeeded (a claim with no `item_id`: it found nothing)."""
        self.outcome(op, "ok", t_mono_ns=t_mono_ns, **fields)

    def ok_many(self, op: Op, results: Sequence[Mapping[str, Any]]) -> None:
        """A claim or enqueue that returned several items: one ok event each, one timestamp."""
        t = _now_ns()
        if not results:
            self.outcome(op, "ok", t_mono_ns=t)
        for fields in results:
            self.outcome(op, "ok", t_mono_ns=t, **fields)

    def fail(self, op: Op, error: str, *, t_mono_ns: int | None = None, **fields: Any) -> None:
        """The call surely did not take effect (refused, or lost a race)."""
        self.outcome(op, "fail", t_mono_ns=t_mono_ns, error=error, **fields)

    def info(self, op: Op, error: str, *, t_mono_ns: int | None = None) -> None:
        """The outcome is unknown (timeout, connection error): it may or may not have happened."""
        self.outcome(op, "info", t_mono_ns=t_mono_ns, error=error)

    def fact(self, kind: str, **fields: Any) -> None:
        """Record a fact read from the store (an outcome with no invoke), such as `ended`."""
        with self._lock:
            self._counter += 1
            op_id = f"{self.process}:{self._counter}"
        self._write(
            {"op_id": op_id, "process": self.process, "kind": kind, "phase": "ok", **fields}
            | {"t_mono_ns": _now_ns()}
        )


def micros(at: datetime) -> int:
    """A store-clock time as integer microseconds since the epoch (the history's unit)."""
    return round(at.timestamp() * 1_000_000)


def grant_fields(lease: Lease) -> dict[str, Any]:
    """What a claim's ok event records of one lease: the checker's grant, with the store-clock
    expiry and the group the flow-control invariants judge by."""
    return {
        "item_id": lease.id,
        "token": lease.token,
        "lease_seconds": lease.lease_seconds,
        "expires_at_us": micros(lease.expires_at),
        "queue": lease.queue,
        "group": lease.group,
    }


def policy_fields(policy: QueuePolicy) -> dict[str, Any]:
    """A policy's limits as a policy op's invoke records them (rates as [count, per_seconds])."""
    return {
        "concurrency": policy.concurrency,
        "group_concurrency": policy.group_concurrency,
        "rate": None if policy.rate is None else [policy.rate.count, policy.rate.per_seconds],
        "group_rate": (
            None
            if policy.group_rate is None
            else [policy.group_rate.count, policy.group_rate.per_seconds]
        ),
    }


LEASE_GOES_ON = frozenset({"claimed", "heartbeat"})


def lease_end_facts(item_id: int, events: Iterable[HistoryEvent]) -> list[dict[str, Any]]:
    """The `ended` facts of one item's leases, from its attempt history (store clock): one per
    token claimed, with `ended_at_us` the time of the first other event of that token (a
    complete, release, fail, cancel, or the reap of its expiry, which the checker caps at the
    expiry itself); without one the lease ran until it expired."""
    ends: dict[int, int | None] = {}
    for event in events:
        if event.token is None:
            continue
        if event.kind == "claimed":
            ends.setdefault(event.token, None)
        elif event.kind not in LEASE_GOES_ON and ends.get(event.token) is None:
            ends[event.token] = micros(event.at)
    return [{"item_id": item_id, "token": token, "ended_at_us": at} for token, at in ends.items()]


def load_history(paths: Iterable[str | Path]) -> list[Event]:
    """All events of the given files; a torn last line (a killed writer) is skipped."""
    events: list[Event] = []
    for path in paths:
        with Path(path).open(encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict) and "op_id" in event and "phase" in event:
                    events.append(event)
    return events
