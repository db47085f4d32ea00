"""Runs one fault scenario: enqueue (recorded), spawn worker processes, let the test inject its
faults, heal, wait for the workers to finish, drain, read the final state and check the history.

Every worker writes its own history file; the coordinator's enqueues and the drain's calls go in
files of their own; `workclaim.bench.history.check` reads them all with the store's final state.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.faults import report
from tests.faults.effects import EffectStore, EffectSummary
from tests.faults.worker import Worker, WorkerConfig, enqueue_loop, kill_quietly, run
from tests.support.crashpoints import EXIT_CODE as CRASH_EXIT
from workclaim import Queue, Settings
from workclaim.bench.history import (
    CheckResult,
    Recorder,
    check,
    lease_end_facts,
    load_history,
    policy_fields,
)
from workclaim.bench.history.flow import LIMITS
from workclaim.errors import ItemNotFound, WorkclaimError
from workclaim.models import QueuePolicy
from workclaim.validation import check_policy

QUEUE = "faults"
POLL = 0.05  # how often the coordinator looks at the queue's counts while it waits
JOIN_SECONDS = 30.0


@dataclass(slots=True)
class Outcome:
    """What a scenario leaves: the check, the effect store's counts and the soak table's figures."""

    scenario: str
    check: CheckResult
    effects: EffectSummary
    items: int
    faults: int
    reclaims: int
    indeterminate: int
    recovery_s: float | None
    reclaim_delays: list[float] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def violations(self) -> int:
        return sum(self.check.violations.values()) + self.effects.accepted_stale

    def row(self) -> dict[str, Any]:
        """One line of the soak table (and of bench-results/soak.json)."""
        delays = self.reclaim_delays
        return {
            "scenario": self.scenario,
            "faults": self.faults,
            "items": self.items,
            "reclaims": self.reclaims,
            "indeterminate": self.indeterminate,
            "violations": self.violations,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 3),
            "max_reclaim_after_expiry_s": round(max(delays), 3) if delays else None,
            "duplicate_executions": self.effects.duplicate_executions,
            "stale_effects_rejected": self.effects.rejected_stale,
            "violations_by_invariant": {k: v for k, v in self.check.violations.items() if v},
            **self.notes,
        }

    def describe(self) -> str:
        return f"{self.check.summary()}\neffects: {self.effects}\nrow: {self.row()}"


class FaultRun:
    """One scenario's queue, processes, history directory and effect store."""

    def __init__(
        self,
        scenario: str,
        url: str,
        tmp_path: Path,
        *,
        lease: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self.scenario = scenario
        self.url = url
        self.lease = lease
        self.timeout = timeout
        self.dir = tmp_path / "history"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.effects_path = str(tmp_path / "effects.db")
        EffectStore(self.effects_path).close()  # create the schema before the workers race
        self.ctx = mp.get_context("spawn")
        self.stop = self.ctx.Event()
        self.procs: list[Any] = []
        self.faults = 0
        self.enqueued: list[int] = []
        self.rec = Recorder(self.dir / "coordinator.jsonl", process="coordinator")
        self.admin = Queue(url, settings=Settings(timeout=timeout))

    # -- setup ------------------------------------------------------------
    def enqueue(self, n: int, *, group: str | None = None, queue: str = QUEUE) -> list[int]:
        """Enqueue n items (in `group` of `queue`) in one recorded call."""
        op = self.rec.invoke("enqueue")
        self.rec.flush()
        ids = self.admin.enqueue_many(queue, [{"n": i} for i in range(n)], group=group)
        self.rec.ok_many(op, [{"item_id": i} for i in ids])
        self.rec.flush()
        self.enqueued.extend(ids)
        return ids

    def config(self, name: str, **options: Any) -> WorkerConfig:
        """A worker config for this run; `options` override the defaults."""
        base = WorkerConfig(
            url=self.url,
            queue=QUEUE,
            name=name,
            history_dir=str(self.dir),
            effects=self.effects_path,
            lease=self.lease,
            timeout=self.timeout,
        )
        return replace(base, **options)

    def spawn(self, config: WorkerConfig, *, events: bool = True) -> Any:
        """Start a worker process; with `events` it reports what it does on a queue of its own
        (never shared: a process stopped or killed while it holds a shared queue's lock would
        block every other writer)."""
        channel = self.ctx.Queue() if events else None
        process: Any = self.ctx.Process(target=run, args=(config, channel, self.stop), daemon=True)
        process.start()
        process._wc_name = config.name
        process._wc_events = channel
        self.procs.append(process)
        return process

    def spawn_enqueuer(self, name: str, *, batch: int, payload_bytes: int) -> Any:
        """Start a process that enqueues batches until the run stops (a writer to kill)."""
        channel = self.ctx.Queue()
        process: Any = self.ctx.Process(
            target=enqueue_loop,
            args=(self.config(name), batch, payload_bytes, channel, self.stop),
            daemon=True,
        )
        process.start()
        process._wc_name = name
        process._wc_events = channel
        self.procs.append(process)
        return process

    def wait_ready(self, processes: list[Any]) -> None:
        """Wait until these workers have opened their queue (each sends "ready" first)."""
        for process in processes:
            assert self.next_event(process, skip_ready=False)[2] == "ready"

    def next_event(
        self, process: Any, timeout: float = 30.0, *, skip_ready: bool = True
    ) -> tuple[Any, ...]:
        """The next message `process` sent (name, pid, what, ...), "ready" ones skipped."""
        while True:
            try:
                event = tuple(process._wc_events.get(timeout=timeout))
            except queue_mod.Empty:
                history = sorted(self.dir.glob(f"{process._wc_name}.{process.pid}.jsonl"))
                tail = history[0].read_text().splitlines()[-3:] if history else []
                raise AssertionError(
                    f"no message from {process._wc_name} (pid {process.pid}, alive "
                    f"{process.is_alive()}, exit code {process.exitcode}) in {timeout:g}s; "
                    f"its last events: {tail}"
                ) from None
            if not (skip_ready and event[2] == "ready"):
                return event

    # -- flow control --------------------------------------------------------
    def set_policy(self, queue: str = QUEUE, **limits: Any) -> QueuePolicy:
        """`set_policy` on the run's queue (or `queue`), recorded with the limits it sets."""
        wanted = check_policy(queue, *(limits.get(name) for name in LIMITS))
        op = self.rec.invoke("policy", queue=queue, policy=policy_fields(wanted))
        self.rec.flush()
        policy = self.admin.set_policy(queue, **limits)
        self.rec.ok(op)
        self.rec.flush()
        return policy

    def flip(self, paused: bool) -> None:
        """Pause or resume the run's queue, recorded (invoke before the call, ok after it)."""
        op = self.rec.invoke("pause" if paused else "resume", queue=QUEUE)
        self.rec.flush()
        (self.admin.pause if paused else self.admin.resume)(QUEUE)
        self.rec.ok(op)
        self.rec.flush()

    def record_lease_ends(self, events: list[dict[str, Any]]) -> int:
        """Read the attempt history of every item granted in `events` and record the store-clock
        end of each of its leases (`ended` facts, for the flow-control checks); returns how many."""
        items = sorted(
            {
                int(e["item_id"])
                for e in events
                if e["kind"] == "claim" and e["phase"] == "ok" and e.get("item_id") is not None
            }
        )
        n = 0
        with Recorder(self.dir / "store.jsonl", process="store") as rec:
            for item in items:
                for fact in lease_end_facts(item, self.admin.history(item)):
                    rec.fact("ended", **fact)
                    n += 1
        return n

    # -- faults ------------------------------------------------------------
    def kill(self, process: Any, sig: int = signal.SIGKILL) -> None:
        """Send a signal to a worker (counted as a fault unless it is SIGCONT)."""
        kill_quietly(process.pid, sig)
        if sig != signal.SIGCONT:
            self.faults += 1

    def counts(self) -> tuple[int, int] | None:
        """(queued, claimed) of the run's queue, or None while the store does not answer."""
        try:
            stats = self.admin.stats(QUEUE)
        except WorkclaimError:
            return None
        return stats.queued, stats.claimed

    def wait_until_done(self, done: int, seconds: float = 60.0) -> None:
        """Wait (bounded) until the workers have finished `done` items: spawned workers take a
        while to start on a busy machine, and a fault before any of them works tests nothing."""
        deadline = time.monotonic() + seconds
        while self.admin.stats(QUEUE).done < done:
            assert time.monotonic() < deadline, f"the workers did not finish {done} items"
            time.sleep(POLL)  # polling the store's counts: there is no event to wait on

    def wait_until_finished(self, seconds: float) -> bool:
        """Wait (bounded) until nothing is queued or claimed; True when that happened."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.counts() == (0, 0):
                return True
            time.sleep(POLL)  # polling the store's counts: there is no event to wait on
        return False

    # -- the end ------------------------------------------------------------
    def stop_workers(self) -> None:
        """Tell the workers to stop at their next empty claim; kill any that do not."""
        self.stop.set()
        for process in self.procs:
            process.join(JOIN_SECONDS)
            if process.is_alive():
                kill_quietly(process.pid, signal.SIGCONT)
                process.kill()
                process.join(5)

    def drain(self, seconds: float = 60.0) -> None:
        """Claim and complete whatever is left, in this process, until three claims in a row find
        nothing and the queue has nothing queued or claimed (recorded like any worker)."""
        config = self.config("drain", idle_wait=min(1.0, self.lease), max_items=None)
        with Recorder(self.dir / "drain.jsonl", process="drain") as rec:
            Worker(config, rec, None).loop(_Drained(self, seconds), empty_claims=3)

    def final_state(self, events: list[dict[str, Any]]) -> dict[int, str]:
        """The status, as the store has it now, of each item the history shows enqueued."""
        ids = set(self.enqueued)
        ids.update(
            int(e["item_id"])
            for e in events
            if e["kind"] == "enqueue" and e["phase"] == "ok" and e.get("item_id") is not None
        )
        final = {}
        for i in sorted(ids):
            try:
                final[i] = str(self.admin.get(i).status)
            except ItemNotFound:
                final[i] = "missing"
        return final

    def finish(
        self, *, recovery_from_ns: int | None = None, clock_slack_ns: int = 0, **notes: Any
    ) -> Outcome:
        """Stop the workers, drain, check the history (`clock_slack_ns`: how far the store's
        clock may have jumped ahead, see `check`); record the soak row."""
        self.stop_workers()
        self.faults += sum(p.exitcode == CRASH_EXIT for p in self.procs)  # crash points reached
        self.drain()
        self.rec.close()
        events = load_history(sorted(self.dir.glob("*.jsonl")))
        result = check(events, final_state=self.final_state(events), clock_slack_ns=clock_slack_ns)
        store = EffectStore(self.effects_path)
        try:
            effects = store.summary()
        finally:
            store.close()
        outcome = Outcome(
            scenario=self.scenario,
            check=result,
            effects=effects,
            items=result.counts.get("items_enqueued", 0),
            faults=self.faults,
            reclaims=result.counts.get("grants", 0) - result.counts.get("items_granted", 0),
            indeterminate=sum(v for k, v in result.counts.items() if k.endswith(":info")),
            recovery_s=_first_claim_after(events, recovery_from_ns),
            reclaim_delays=reclaim_delays(events, self.dead_processes()),
            notes=notes,
        )
        report.add(outcome.row())
        return outcome

    def dead_processes(self) -> set[str]:
        """History process names (`name.pid`) of workers that died by a crash or SIGKILL."""
        return {
            f"{getattr(p, '_wc_name', '')}.{p.pid}"
            for p in self.procs
            if p.exitcode in (137, -signal.SIGKILL)
        }

    def close(self) -> None:
        """Kill leftover processes and close the coordinator's queue."""
        for process in self.procs:
            if process.is_alive():
                kill_quietly(process.pid, signal.SIGCONT)
                process.kill()
                process.join(5)
        self.rec.close()
        self.admin.close()
        for process in self.procs:
            if process._wc_events is not None:
                process._wc_events.close()
                process._wc_events.join_thread()


class _Drained:
    """The drain's stop signal: the queue has nothing queued or claimed, or time is up."""

    def __init__(self, run: FaultRun, seconds: float) -> None:
        self.run = run
        self.deadline = time.monotonic() + seconds

    def is_set(self) -> bool:
        return time.monotonic() > self.deadline or self.run.counts() == (0, 0)


def _first_claim_after(events: list[dict[str, Any]], t_ns: int | None) -> float | None:
    """Seconds from `t_ns` (a fault's heal) to the first claim that returned an item after it."""
    if t_ns is None:
        return None
    oks = [
        int(e["t_mono_ns"])
        for e in events
        if e.get("kind") == "claim" and e["phase"] == "ok" and e.get("item_id") is not None
        if int(e["t_mono_ns"]) >= t_ns
    ]
    return (min(oks) - t_ns) / 1e9 if oks else None


def reclaim_delays(events: list[dict[str, Any]], dead: set[str]) -> list[float]:
    """For each lease a dead process held and never ended: seconds from the lease's latest
    possible expiry to the item's next grant (<= 0 means re-claimed right at expiry)."""
    invokes = {e["op_id"]: e for e in events if e["phase"] == "invoke"}
    grants: dict[int, list[tuple[int, int, int, str]]] = defaultdict(list)
    ended: set[tuple[int, int]] = set()
    for e in events:
        if e["phase"] != "ok" or e.get("item_id") is None:
            continue
        if e["kind"] == "claim":
            inv = invokes.get(e["op_id"], e)
            lease_ns = round(float(e.get("lease_seconds") or 0) * 1e9)
            grants[int(e["item_id"])].append(
                (
                    int(e["t_mono_ns"]),
                    int(inv["t_mono_ns"]) + lease_ns,
                    int(e["token"]),
                    e["process"],
                )
            )
        elif e["kind"] in ("complete", "release", "fail"):
            ended.add((int(e["item_id"]), int(e["token"])))
    delays = []
    for item, item_grants in grants.items():
        item_grants.sort()
        for i, (_, expiry, token, process) in enumerate(item_grants):
            if process not in dead or (item, token) in ended or i + 1 == len(item_grants):
                continue
            delays.append((item_grants[i + 1][0] - expiry) / 1e9)
    return delays


def call_seconds(events: list[dict[str, Any]], *, kinds: tuple[str, ...]) -> list[float]:
    """How long each call of these kinds took, from its invoke to its (first) outcome."""
    invokes = {e["op_id"]: int(e["t_mono_ns"]) for e in events if e["phase"] == "invoke"}
    took: dict[str, float] = {}
    for e in events:
        if e["phase"] != "invoke" and e["kind"] in kinds and e["op_id"] in invokes:
            seconds = (int(e["t_mono_ns"]) - invokes[e["op_id"]]) / 1e9
            took.setdefault(e["op_id"], seconds)
    return list(took.values())


def start_workers(run: FaultRun, prefix: str, n: int, url: str | None = None) -> list[Any]:
    """Spawn `n` recording workers named `<prefix><i>` doing 20 ms jobs (on `url` if given)."""
    options: dict[str, Any] = {"job_seconds": 0.02}
    if url is not None:
        options["url"] = url
    return [run.spawn(run.config(f"{prefix}{i}", **options), events=False) for i in range(n)]
