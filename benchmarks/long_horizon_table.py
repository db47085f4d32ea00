"""docs/postgres.md's sustained-load table from `benchmarks/long_horizon.py` summaries.

python -m benchmarks.long_horizon_table bench-results/long_horizon/*.summary.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HEADER = (
    "| system | autovacuum | offered/s | clean: done/s, pickup p95 | held snapshot: done/s, "
    "p95, p95 / clean | recovery: p95 within 1.2x of clean, backlog drained | largest size "
    "| run ended (UTC), load then |\n|---|---|---|---|---|---|---|---|"
)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:,.0f} s" if value >= 10_000 else f"{value:,.1f} ms"


def row(summary: dict[str, Any]) -> str:
    """One line of the table for one run's summary."""
    phases = summary["per_phase"]
    clean, held = phases.get("clean", {}), phases.get("held", {})
    recovered = summary["recovered_within_1_2x_after_s"]
    ratio = summary["held_over_clean_p95"]
    size = summary["max_bytes"]
    return (
        f"| {summary['system']} | {summary['autovacuum']} | {summary['rate']:,.0f} "
        f"| {clean.get('completed_per_s', 0):,.0f}, {_ms(clean.get('pickup_ms', {}).get('p95'))} "
        f"| {held.get('completed_per_s', 0):,.0f}, {_ms(held.get('pickup_ms', {}).get('p95'))}, "
        f"{'-' if ratio is None else f'{ratio:,.{0 if ratio >= 10 else 1}f}x'} "
        f"| {'not within the phase' if recovered is None else f'after {recovered:,.0f} s'} "
        f"| {'-' if size is None else f'{size / 1e6:,.0f} MB'} "
        f"| {summary['date'][:16].replace('T', ' ')}, "
        f"{'/'.join(f'{x:.1f}' for x in summary['load_average'])} |"
    )


def table(paths: list[Path]) -> str:
    summaries = [json.loads(path.read_text()) for path in paths]
    summaries.sort(key=lambda s: (s["system"] != "workclaim", s["system"], s["autovacuum"]))
    return "\n".join([HEADER, *map(row, summaries)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("summaries", nargs="+", type=Path)
    print(table(parser.parse_args(argv).summaries))


if __name__ == "__main__":
    main()
