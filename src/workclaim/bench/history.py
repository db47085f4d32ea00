"""Recorded histories of queue operations, and the checker that verifies them.

Every worker process appends JSON lines to its own file, one event per line:

    {op_id, process, kind, phase, t_mono_ns, item_id, token, worker, lease_seconds,
     expires_at_us, error, status}

`kind` is enqueue | claim | heartbeat | complete | release | fail; `phase` is invoke for the call
and ok | fail | info for its outcome (one outcome event per item a claim or enqueue returned, all
sharing the op's id). A timeout or connection error is `info`: the call may or may not have taken
effect, and the checker assumes nothing about it. `t_mono_ns` is `time.monotonic_ns()`, which on
Linux is one clock for every process of the host, so events of different processes compare.

The checker (`check`) is O(n log n) and judges conservatively: a lease counts as held only over
its sure-held window, so a delay between the store and the client can hide a violation but never
invent one. Run it as `python -m workclaim.bench.history FILES... [--final state.json]`.
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

KINDS = ("enqueue", "claim", "heartbeat", "complete", "release", "fail")
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
)
LOST_RACE = "lost race"  # the `error` of a claim:fail that lost a race for a candidate

INVARIANTS = {
    "lease_overlap": "two leases of one item held at once (sure-held windows overlap)",
    "token_reused": "an (item, token) pair handed out twice",
    "token_order": "a grant's token not above a grant that surely came before it",
    "stale_accepted": "a heartbeat/complete/release/fail accepted with a superseded token",
    "double_completion": "more than one accepted completion for an item",
    "redelivery_after_complete": "an item claimed by a call made after its completion returned",
    "unexpected_item": "an item that was never enqueued was claimed or completed",
    "lost_item": "an enqueued item neither done nor dead at the end",
}

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
    ) -> Op:
        """Record the start of a call; returns the handle for its outcome."""
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


# -- the checker ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    """One op: its invoke event and its outcome events."""

    invoke: Event | None = None
    outcomes: list[Event] = field(default_factory=list)

    @property
    def t_invoke(self) -> int:
        return int((self.invoke or self.outcomes[0])["t_mono_ns"])

    @property
    def phase(self) -> str:
        return str(self.outcomes[0]["phase"]) if self.outcomes else "info"


@dataclass(frozen=True, slots=True)
class Grant:
    """One lease handed out by a successful claim."""

    item_id: int
    token: int | None
    t_invoke: int
    t_ok: int
    lease_ns: int | None  # None: held until ended (strategies without expiry)
    op_id: str
    worker: str | None


@dataclass(slots=True)
class CheckResult:
    """Counts per invariant (all must be 0), what the history held, and a few examples."""

    violations: dict[str, int]
    counts: dict[str, int]
    examples: dict[str, list[str]]
    checked: dict[str, bool]

    @property
    def ok(self) -> bool:
        """True when no invariant is violated."""
        return not any(self.violations.values())

    @property
    def duplicates(self) -> int:
        """Leases of one item granted while another was surely live, or under a reused token."""
        return self.violations["lease_overlap"] + self.violations["token_reused"]

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able data."""
        return {
            "ok": self.ok,
            "violations": dict(self.violations),
            "counts": dict(self.counts),
            "checked": dict(self.checked),
            "examples": {k: v for k, v in self.examples.items() if v},
        }

    def summary(self) -> str:
        """A few lines for a terminal."""
        lines = [
            "history: "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()) if v or k == "ops")
        ]
        for name, text in INVARIANTS.items():
            mark = "ok  " if self.violations[name] == 0 else "FAIL"
            note = "" if self.checked[name] else " (not checked: no data)"
            lines.append(f"  {mark} {name}: {self.violations[name]}  {text}{note}")
            lines.extend(f"         e.g. {ex}" for ex in self.examples[name][:3])
        lines.append("result: " + ("OK" if self.ok else "VIOLATIONS FOUND"))
        return "\n".join(lines)


class _Collector:
    def __init__(self) -> None:
        self.violations = {name: 0 for name in INVARIANTS}
        self.examples: dict[str, list[str]] = {name: [] for name in INVARIANTS}

    def add(self, name: str, example: str, n: int = 1) -> None:
        self.violations[name] += n
        if len(self.examples[name]) < 5:
            self.examples[name].append(example)


def _calls(events: Iterable[Event]) -> dict[str, _Call]:
    calls: dict[str, _Call] = defaultdict(_Call)
    for event in events:
        call = calls[str(event["op_id"])]
        if event["phase"] == "invoke":
            call.invoke = event
        else:
            call.outcomes.append(event)
    return calls


def _grants(calls: Mapping[str, _Call]) -> list[Grant]:
    grants = []
    for op_id, call in calls.items():
        if call.invoke is None or call.invoke["kind"] != "claim":
            continue
        for out in call.outcomes:
            if out["phase"] != "ok" or out.get("item_id") is None:
                continue
            lease = out.get("lease_seconds", call.invoke.get("lease_seconds"))
            grants.append(
                Grant(
                    item_id=int(out["item_id"]),
                    token=None if out.get("token") is None else int(out["token"]),
                    t_invoke=call.t_invoke,
                    t_ok=int(out["t_mono_ns"]),
                    lease_ns=None if lease is None else round(float(lease) * 1e9),
                    op_id=op_id,
                    worker=call.invoke.get("worker"),
                )
            )
    return grants


def check(
    events: Iterable[Event],
    *,
    final_state: Mapping[int, str] | None = None,
    clock_slack_ns: int = 0,
) -> CheckResult:
    """Verify a history against the invariants in `INVARIANTS`.

    `final_state` maps item id -> status read from the store after the drain; without it an item
    counts as lost unless the history shows its accepted completion (or a fail that made it dead).
    `clock_slack_ns` shortens every sure-held window, for a store clock that may run fast.
    """
    calls = _calls(events)
    grants = _grants(calls)
    out = _Collector()
    by_item: dict[int, list[Grant]] = defaultdict(list)
    for g in grants:
        by_item[g.item_id].append(g)

    # Outcomes of fenced ops, keyed by (item, token).
    end_invoke: dict[tuple[int, int | None], int] = {}
    hb_until: dict[tuple[int, int | None], int] = {}
    first_invoke: dict[tuple[str, int, int | None], int] = {}
    completions: dict[int, set[tuple[int | None, str | None]]] = defaultdict(set)
    completed_at: dict[int, int] = {}
    dead: set[int] = set()
    counts: Counter[str] = Counter()
    seen_items: set[int] = set()
    enqueued: set[int] = set()
    enqueue_unknown = 0
    ended_kinds: list[tuple[str, tuple[int, int | None]]] = []
    for call in calls.values():
        kind = (
            str((call.invoke or call.outcomes[0])["kind"]) if call.invoke or call.outcomes else ""
        )
        counts["ops"] += 1
        counts[f"{kind}:{call.phase}"] += 1
        if kind == "enqueue":
            if call.phase == "ok":
                enqueued.update(int(o["item_id"]) for o in call.outcomes if o.get("item_id"))
            elif call.phase == "info":
                enqueue_unknown += 1
            continue
        if kind not in FENCED_KINDS or call.invoke is None:
            continue
        item, token = call.invoke.get("item_id"), call.invoke.get("token")
        if item is None:
            continue
        key = (int(item), token)
        seen_items.add(key[0])
        t_inv = call.t_invoke
        fk = (kind, key[0], token)
        first_invoke[fk] = min(first_invoke.get(fk, t_inv), t_inv)
        if call.phase != "ok":
            continue
        if kind == "heartbeat":
            extend = call.invoke.get("lease_seconds")
            if extend is None:
                continue  # the lease's own length: judged from the grant, conservatively
            until = t_inv + round(float(extend) * 1e9)
            hb_until[key] = max(hb_until.get(key, until), until)
        else:
            ended_kinds.append((kind, key))
        if kind == "complete":
            completions[key[0]].add((token, call.invoke.get("worker")))
            t_done = int(call.outcomes[0]["t_mono_ns"])
            completed_at[key[0]] = min(completed_at.get(key[0], t_done), t_done)
        if kind == "fail" and any(o.get("status") == "dead" for o in call.outcomes):
            dead.add(key[0])
    # The lease ended no later than the first try of the call that ended it: an ok repeat of an
    # earlier try whose reply was lost returns that try's outcome.
    for kind, key in ended_kinds:
        t_end = first_invoke[(kind, key[0], key[1])]
        end_invoke[key] = min(end_invoke.get(key, t_end), t_end)
    counts["grants"] = len(grants)
    counts["items_enqueued"] = len(enqueued)
    counts["items_granted"] = len(by_item)

    # (1) overlapping sure-held windows, per item, by a sweep over windows sorted by start.
    for item, item_grants in by_item.items():
        windows = []
        for g in item_grants:
            key = (item, g.token)
            held = g.t_invoke + g.lease_ns if g.lease_ns is not None else None
            if key in hb_until and held is not None:
                held = max(held, hb_until[key])
            ended = end_invoke.get(key)
            end = ended if held is None else (held if ended is None else min(held, ended))
            if end is None:
                end = 1 << 62  # never ended and never expires: held to the end of the history
            end -= clock_slack_ns
            if end > g.t_ok:
                windows.append((g.t_ok, end, g))
        windows.sort(key=lambda w: w[0])
        max_end, holder = -1, None
        for start, end, g in windows:
            if holder is not None and start < max_end:
                out.add(
                    "lease_overlap",
                    f"item {item}: token {g.token} ({g.op_id}) granted while token "
                    f"{holder.token} ({holder.op_id}) was surely held",
                )
            if end > max_end:
                max_end, holder = end, g

    # (2) tokens: no pair twice; strictly increasing over grants that surely happened in order.
    pairs = Counter((g.item_id, g.token) for g in grants if g.token is not None)
    for (item, token), n in pairs.items():
        if n > 1:
            out.add("token_reused", f"item {item} token {token} handed out {n} times", n - 1)
    ok_sorted: dict[int, tuple[list[int], list[int]]] = {}
    for item, item_grants in by_item.items():
        with_token = [g for g in item_grants if g.token is not None]
        by_ok = sorted(with_token, key=lambda g: g.t_ok)
        times = [g.t_ok for g in by_ok]
        prefix_max: list[int] = []
        best = -1
        for g in by_ok:
            best = max(best, int(g.token or 0))
            prefix_max.append(best)
        ok_sorted[item] = (times, prefix_max)
        for g in with_token:
            i = bisect.bisect_left(times, g.t_invoke)
            if i and prefix_max[i - 1] >= int(g.token or 0):
                out.add(
                    "token_order",
                    f"item {item}: token {g.token} ({g.op_id}) after a grant of token "
                    f"{prefix_max[i - 1]}",
                )

    # (3) a fenced op accepted although a newer grant surely existed before the op was first tried.
    for call in calls.values():
        if call.invoke is None or call.phase != "ok":
            continue
        kind = call.invoke["kind"]
        if kind not in FENCED_KINDS or call.invoke.get("item_id") is None:
            continue
        item, token = int(call.invoke["item_id"]), call.invoke.get("token")
        if token is None or item not in ok_sorted:
            continue
        times, prefix_max = ok_sorted[item]
        i = bisect.bisect_left(times, first_invoke[(kind, item, token)])
        if i and prefix_max[i - 1] > int(token):
            out.add(
                "stale_accepted",
                f"item {item}: {kind} with token {token} ({call.invoke['op_id']}) accepted "
                f"after token {prefix_max[i - 1]} was granted",
            )

    # (4) at most one accepted completion per item (a repeat of the same lease's is one).
    for item, leases in completions.items():
        if len(leases) > 1:
            out.add(
                "double_completion",
                f"item {item} completed under leases (token, worker) {sorted(leases, key=str)}",
                len(leases) - 1,
            )

    # (5) no claim invoked after a completion returned hands the item out again.
    for g in grants:
        done_at = completed_at.get(g.item_id)
        if done_at is not None and g.t_invoke > done_at:
            out.add(
                "redelivery_after_complete",
                f"item {g.item_id} granted again (token {g.token}, {g.op_id}) after completion",
            )

    # (6) every item touched was enqueued (items of enqueues with unknown outcome: recovered).
    has_enqueues = bool(enqueued) or enqueue_unknown > 0
    touched = set(by_item) | seen_items
    strangers = touched - enqueued if has_enqueues else set()
    if enqueue_unknown:
        counts["items_recovered"] = len(strangers)
    else:
        for item in sorted(strangers):
            out.add("unexpected_item", f"item {item} was never enqueued")

    # (7) nothing lost: every enqueued item is done or dead at the end.
    for item in sorted(enqueued):
        if final_state is not None:
            status = final_state.get(item)
            if status not in ("done", "dead"):
                out.add("lost_item", f"item {item} ended {status or 'missing'}")
        elif item not in completions and item not in dead:
            out.add("lost_item", f"item {item} has no accepted completion")

    checked = {name: True for name in INVARIANTS}
    checked["unexpected_item"] = has_enqueues and not enqueue_unknown
    checked["lost_item"] = bool(enqueued)
    checked["lease_overlap"] = checked["token_order"] = bool(grants)
    return CheckResult(out.violations, dict(counts), out.examples, checked)


def check_files(
    paths: Iterable[str | Path],
    *,
    final_state: Mapping[int, str] | None = None,
    clock_slack_ns: int = 0,
) -> CheckResult:
    """`check` over the events of some history files."""
    return check(load_history(paths), final_state=final_state, clock_slack_ns=clock_slack_ns)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m workclaim.bench.history FILES...`: exit 0 when the history is clean, 1 if not."""
    parser = argparse.ArgumentParser(
        prog="python -m workclaim.bench.history", description=main.__doc__
    )
    parser.add_argument("files", nargs="+", type=Path, help="JSON-lines history files")
    parser.add_argument(
        "--final", type=Path, help="JSON object {item_id: status} read from the store at the end"
    )
    parser.add_argument("--slack-ms", type=float, default=0.0, help="store clock rate error")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        final = None
        if args.final is not None:
            raw = json.loads(args.final.read_text(encoding="utf-8"))
            final = {int(k): str(v) for k, v in raw.items()}
        result = check_files(
            args.files, final_state=final, clock_slack_ns=round(args.slack_ms * 1e6)
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
