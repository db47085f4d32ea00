"""The race: N spawned worker processes, each with its own connection, released by a barrier.

One pool of processes serves all runs of a bench row: before each run the coordinator adds fresh
items, then the barrier releases every worker at once and each claims until its stop rule says so.
Every call is recorded in the worker's own history file; the checker reads them all afterwards.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue as queue_mod
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workclaim.bench.history import LOST_RACE, CheckResult, Recorder, check_files
from workclaim.bench.strategies import Target, open_admin, open_worker
from workclaim.bench.strategies.base import Grant, WorkerSide
from workclaim.errors import BackendError, LeaseLost

BARRIER_TIMEOUT = 300.0
MAX_ERRORS = 50  # a worker whose store keeps failing stops instead of spinning


@dataclass(frozen=True, slots=True)
class WorkPlan:
    """How each worker behaves in a run.

    - `batches`: claim sizes used in turn (1 = single claims; e.g. (1, 5) alternates).
    - `drain`: keep claiming until nothing of the run is pending (needed when leases expire);
      otherwise a worker stops at its first "queue empty" answer, as in the spike.
    - `stall_workers` / `stall_every`: worker i < stall_workers holds every k-th claim past its
      `stall_lease`, until another worker has taken the item (bounded by `stall_timeout`), then
      tries to heartbeat and complete it: both must be refused.
    - `heartbeat_every` / `release_every`: exercise the other fenced calls now and then.
    """

    batches: tuple[int, ...] = (1,)
    lease: float = 30.0
    drain: bool = False
    stall_workers: int = 0
    stall_every: int = 0
    stall_lease: float = 0.25
    stall_timeout: float = 10.0
    heartbeat_every: int = 0
    release_every: int = 0
    idle_wait: float = 0.2

    @property
    def has_reclaims(self) -> bool:
        """True when an item may rightly be granted more than once (stalls, releases)."""
        return bool(self.stall_every and self.stall_workers) or bool(self.release_every)


@dataclass(frozen=True, slots=True)
class RaceConfig:
    """One bench row's race: a target, how many workers, runs and items, and the plan."""

    target: Target
    workers: int
    items: int
    runs: int = 1
    plan: WorkPlan = field(default_factory=WorkPlan)


@dataclass(slots=True)
class RaceResult:
    """What a race leaves: the history files, per-run windows, final states and the check."""

    config: RaceConfig
    history_files: list[Path]
    run_windows: list[tuple[int, int]]  # (released, last worker done) in monotonic ns
    final_state: dict[int, str]
    enqueued: int
    check: CheckResult
    settings: dict[str, Any]
    worker_errors: list[str]


@dataclass(slots=True)
class _Tally:
    errors: int = 0
    stale_refused: int = 0


def _record_grants(grants: list[Grant]) -> list[dict[str, Any]]:
    return [
        {
            "item_id": g.item_id,
            "token": g.token,
            "lease_seconds": g.lease_seconds,
            "expires_at_us": g.expires_at_us,
        }
        for g in grants
    ]


class _Worker:
    """The claim loop of one worker process for one run."""

    def __init__(self, index: int, side: WorkerSide, rec: Recorder, plan: WorkPlan) -> None:
        self.index = index
        self.name = f"w{index}"
        self.side = side
        self.rec = rec
        self.plan = plan
        self.calls = 0
        self.held = 0

    def run(self, run: int) -> _Tally:
        tally = _Tally()
        plan, wait = self.plan, 0.0
        while tally.errors < MAX_ERRORS:
            stalling = (
                self.index < plan.stall_workers
                and plan.stall_every > 0
                and self.calls % plan.stall_every == plan.stall_every - 1
            )
            limit = 1 if stalling else plan.batches[self.calls % len(plan.batches)]
            lease = plan.stall_lease if stalling else plan.lease
            self.calls += 1
            op = self.rec.invoke("claim", worker=self.name, lease_seconds=lease)
            try:
                result = self.side.claim(run, worker=self.name, limit=limit, lease=lease, wait=wait)
            except BackendError as exc:
                self.rec.info(op, f"{type(exc).__name__}: {exc}")
                tally.errors += 1
                continue
            if result.outcome == "lost":
                self.rec.fail(op, LOST_RACE)
                continue
            grants = list(result.grants)
            if not grants:
                self.rec.ok(op)
                if not plan.drain or self._pending(run, tally) == 0:
                    return tally
                wait = plan.idle_wait
                continue
            wait = 0.0
            self.rec.ok_many(op, _record_grants(grants))
            for grant in grants:
                self._finish(grant, stalling, tally)
        return tally

    def _pending(self, run: int, tally: _Tally) -> int:
        try:
            return self.side.pending(run)
        except BackendError:
            tally.errors += 1
            return 1

    def _stall(self, grant: Grant) -> None:
        """Hold the item past its lease: until another worker has it (or it is done), bounded."""
        deadline = time.monotonic() + self.plan.stall_timeout
        if grant.lease_seconds is not None:
            time.sleep(grant.lease_seconds)  # waiting past the lease is the point of a stall
        while time.monotonic() < deadline:
            try:
                if not self.side.held_by_me(grant, self.name):
                    return
            except BackendError:
                pass
            time.sleep(0.01)

    def _finish(self, grant: Grant, stalling: bool, tally: _Tally) -> None:
        self.held += 1
        plan = self.plan
        if stalling:
            self._stall(grant)
        if self.side.supports_leases and (
            stalling or (plan.heartbeat_every and self.held % plan.heartbeat_every == 0)
        ):
            grant = self._fenced(grant, "heartbeat", tally) or grant
            if stalling:
                self._fenced(grant, "complete", tally)
                return
        if self.side.supports_leases and plan.release_every and self.held % plan.release_every == 0:
            self._fenced(grant, "release", tally)
            return
        self._fenced(grant, "complete", tally)

    def _fenced(self, grant: Grant, kind: str, tally: _Tally) -> Grant | None:
        extend = self.plan.lease if kind == "heartbeat" else None
        op = self.rec.invoke(
            kind,
            item_id=grant.item_id,
            token=grant.token,
            worker=self.name,
            lease_seconds=extend,
        )
        try:
            if kind == "heartbeat":
                new = self.side.heartbeat(grant, self.plan.lease)
                self.rec.ok(op, expires_at_us=new.expires_at_us)
                return new
            if kind == "release":
                self.side.release(grant)
            else:
                self.side.complete(grant)
        except LeaseLost as exc:
            self.rec.fail(op, f"LeaseLost: {exc}")
            tally.stale_refused += 1
            return None
        except BackendError as exc:
            self.rec.info(op, f"{type(exc).__name__}: {exc}")
            tally.errors += 1
            return None
        self.rec.ok(op)
        return None


def _worker_main(
    index: int,
    config: RaceConfig,
    history_dir: str,
    barrier: Any,
    stop: Any,
    results: Any,
) -> None:
    """Body of one spawned worker process: connect, then one drain per barrier release."""
    # The coordinator opened the same store first and showed its warnings once; N workers
    # repeating them (a Redis without persistence, say) would bury the table.
    logging.getLogger("workclaim").setLevel(logging.ERROR)
    side: WorkerSide | None = None
    rec = Recorder(Path(history_dir) / f"w{index:03d}.jsonl", process=f"w{index}")
    run = 0
    try:
        side = open_worker(config.target)
        worker = _Worker(index, side, rec, config.plan)
        while True:
            barrier.wait(BARRIER_TIMEOUT)
            if stop.is_set():
                break
            tally = worker.run(run)
            rec.flush()
            results.put((index, run, time.monotonic_ns(), tally.errors, tally.stale_refused, ""))
            run += 1
    except Exception:
        results.put((index, run, time.monotonic_ns(), 1, 0, traceback.format_exc()))
        barrier.abort()
    finally:
        rec.close()
        if side is not None:
            side.close()


ProgressFn = Callable[[int, int], None]


def run_race(
    config: RaceConfig, history_dir: Path, progress: ProgressFn | None = None
) -> RaceResult:
    """Race `config.workers` spawned processes over `config.runs` runs of fresh items; check it.

    Raises `BackendUnavailable` / `ConfigError` before spawning anything when the target's store
    cannot be reached.
    """
    history_dir.mkdir(parents=True, exist_ok=True)
    admin = open_admin(config.target)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(config.workers + 1)
    stop = ctx.Event()
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(i, config, str(history_dir), barrier, stop, results),
            name=f"workclaim-bench-w{i}",
            daemon=True,
        )
        for i in range(config.workers)
    ]
    windows: list[tuple[int, int]] = []
    final: dict[int, str] = {}
    errors: list[str] = []
    enqueued = 0
    rec = Recorder(history_dir / "setup.jsonl", process="setup")
    try:
        for p in procs:
            p.start()
        for run in range(config.runs):
            op = rec.invoke("enqueue")
            ids = admin.add_items(run, config.items)
            rec.ok_many(op, [{"item_id": i} for i in ids])
            rec.flush()
            enqueued += len(ids)
            barrier.wait(BARRIER_TIMEOUT)
            released = time.monotonic_ns()
            ends = _collect(results, config.workers, procs, errors)
            windows.append((released, max(ends, default=released)))
            final.update(admin.final_state(run, ids))
            if progress is not None:
                progress(run + 1, config.runs)
            if errors:
                break
        stop.set()
        if errors:
            barrier.abort()  # wake the workers still waiting, so they exit now
        else:
            barrier.wait(BARRIER_TIMEOUT)
    except threading.BrokenBarrierError:
        errors.append("a worker process failed before the barrier (see its error above)")
    finally:
        rec.close()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        results.close()
        results.join_thread()
        settings = _safe_settings(admin)
        admin.close()
    files = sorted(history_dir.glob("*.jsonl"))
    result = check_files(files, final_state=final)
    return RaceResult(config, files, windows, final, enqueued, result, settings, errors)


def _safe_settings(admin: Any) -> dict[str, Any]:
    try:
        return dict(admin.settings())
    except Exception as exc:
        return {"error": str(exc)}


def _collect(results: Any, workers: int, procs: list[Any], errors: list[str]) -> list[int]:
    """Wait for every worker's end-of-run report; notice a worker that died instead."""
    ends: list[int] = []
    while len(ends) < workers:
        try:
            _index, _run, t_end, _errs, _stale, trace = results.get(timeout=1.0)
        except queue_mod.Empty:
            if any(not p.is_alive() for p in procs):
                errors.append("a worker process died during the run")
                return ends
            continue
        ends.append(int(t_end))
        if trace:
            errors.append(trace)
            return ends
    return ends
