"""What every benchmarked system provides, and the per-process recorder its workers fill."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
QUEUE = "bench"  # the queue / entrypoint / task name every system uses


@dataclass
class Recorder:
    """What one worker process saw: item numbers it processed (in order) and the duration of
    every claim call that returned work (empty claims at the end are left out: a blocking
    library dequeue would otherwise count its idle timeout as latency)."""

    ids: list[int] = field(default_factory=list)
    claims_ns: list[int] = field(default_factory=list)

    def item(self, number: int) -> None:
        self.ids.append(int(number))

    def timed(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        t0 = time.perf_counter_ns()
        result = fn(*args, **kwargs)
        elapsed = time.perf_counter_ns() - t0
        if result:
            self.claims_ns.append(elapsed)
        return result

    def wrap_async(self, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        """`fn` (a library's own async dequeue) with every call that returned work timed."""

        async def timed(*args: Any, **kwargs: Any) -> T:
            t0 = time.perf_counter_ns()
            result = await fn(*args, **kwargs)
            elapsed = time.perf_counter_ns() - t0
            if result:
                self.claims_ns.append(elapsed)
            return result

        return timed

    def wrap(self, fn: Callable[..., T]) -> Callable[..., T]:
        """`fn` (a library's own sync dequeue) with every call that returned work timed."""

        def timed(*args: Any, **kwargs: Any) -> T:
            return self.timed(fn, *args, **kwargs)

        return timed


class System(Protocol):
    """One row family of the benchmark. `prepare`, `prefill` and `cleanup` run in the driver;
    `work` runs in each worker process and must call `start()` once connected and ready (the
    barrier every worker and the driver's clock wait on), then drain the queue and return when
    it finds it empty."""

    name: str
    backend: str  # sqlite | postgres | redis | mariadb
    claim_note: str  # what the timed "claim" is for this system
    config_note: str  # how it is configured, for the report

    def prepare(self, env: dict[str, Any], run_id: str) -> dict[str, Any]: ...

    def prefill(self, ctx: dict[str, Any], n: int) -> None: ...

    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None: ...

    def cleanup(self, ctx: dict[str, Any]) -> None: ...
