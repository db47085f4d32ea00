"""A deliberately broken system for the harness's self-check: workclaim on SQLite, but every
worker records the first item it processes twice. The run must report the duplicates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from systems.base import Recorder
from systems.workclaim_queue import WorkclaimQueue


class DuplicatingRecorder(Recorder):
    def item(self, number: int) -> None:
        if not self.ids:
            super().item(number)  # the injected duplicate
        super().item(number)


class SelfCheck(WorkclaimQueue):
    def work(self, ctx: dict[str, Any], start: Callable[[], None], rec: Recorder) -> None:
        twice = DuplicatingRecorder()
        try:
            super().work(ctx, start, twice)
        finally:
            rec.ids.extend(twice.ids)
            rec.claims_ns.extend(twice.claims_ns)


def make() -> SelfCheck:
    return SelfCheck("sqlite", 1)
