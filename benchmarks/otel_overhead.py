"""What OpenTelemetry costs per claim + complete, in one process, for callgrind to count.

    python benchmarks/otel_overhead.py --mode hidden --items 250   # the package not importable
    python benchmarks/otel_overhead.py --mode off --items 250      # installed, no provider
    python benchmarks/otel_overhead.py --mode sdk --items 250      # the SDK: spans and metrics
    python benchmarks/otel_overhead.py --callgrind                 # all three under callgrind

`--callgrind` runs each mode at 250 and 50 items under `valgrind --tool=callgrind` and prints
the instructions per claim + complete, (I(250) - I(50)) / 200, so start-up and imports cancel
out (load on the machine does not change an instruction count). In `sdk` mode the spans go
through a `SimpleSpanProcessor` to an exporter that drops them, and metrics to an in-memory
reader that is never read: the SDK's own work, with no export cost.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MODES = ("hidden", "off", "sdk")


def configure(mode: str) -> None:
    """Set up the process for `mode` (also used by claim_throughput.py --otel sdk)."""
    if mode == "hidden":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
        return
    if mode == "off":
        return
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def run(mode: str, items: int) -> None:
    """Enqueue `items` items, then claim and complete them one at a time."""
    configure(mode)
    from workclaim import Queue

    with tempfile.TemporaryDirectory() as tmp, Queue(f"sqlite:///{tmp}/o.db") as q:
        assert (q._otel is not None) == (mode == "sdk")
        q.enqueue_many("bench", [{"n": n} for n in range(items)])
        for _ in range(items):
            [lease] = q.claim("bench", worker="w")
            q.complete(lease)


def instructions(mode: str, items: int) -> int:
    """Instructions callgrind counts for `run(mode, items)` in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--items",
                str(items),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        assert match, "no instruction total in callgrind's output"
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="off")
    parser.add_argument("--items", type=int, default=250)
    parser.add_argument("--callgrind", action="store_true", help="count all modes")
    args = parser.parse_args()
    if not args.callgrind:
        run(args.mode, args.items)
        return
    per: dict[str, float] = {}
    for mode in MODES:
        per[mode] = (instructions(mode, 250) - instructions(mode, 50)) / 200
        print(f"{mode:7} {per[mode] / 1000:8.1f}k instructions per claim + complete")
    base = per["hidden"]
    print(f"off / hidden {per['off'] / base:.3f}, sdk / hidden {per['sdk'] / base:.3f}")


if __name__ == "__main__":
    main()
