"""The bench's outputs: a terminal table in the spike's format, JSON, Markdown and a PNG chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = (
    "strategy",
    "backend",
    "scenario",
    "attempts",
    "claims",
    "lost races",
    "empty (while work)",
    "success",
    "duplicates",
    "p50/p95/p99/max ms",
    "claims/s",
    "errors",
    "result",
)


def clean(value: Any) -> Any:
    """The document with NaN/inf replaced by None, so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _ms(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def result_of(row: dict[str, Any]) -> str:
    """PASSED when both per-row criteria hold, else FAILED with the ones that did not."""
    if row["status"] != "ok":
        reason = str(row.get("reason", ""))
        return f"{row['status']}: {reason if len(reason) <= 70 else reason[:67] + '...'}"
    failed = [name for name, ok in row["criteria"].items() if not ok]
    return "PASSED" if not failed else "FAILED (" + ", ".join(failed) + ")"


def cells(row: dict[str, Any]) -> list[str]:
    """One row of the table as text."""
    head = [row["strategy"], row["backend"], row["scenario"]]
    if row["status"] != "ok":
        return [*head, *([""] * (len(COLUMNS) - 4)), result_of(row)]
    rate = row["success_rate"]
    return [
        *head,
        f"{row['attempts']:,}",
        f"{row['claims']:,}",
        f"{row['lost_races']:,}",
        f"{row['empty']:,} ({row['empty_while_work']:,})",
        "-" if rate is None or not math.isfinite(rate) else f"{rate:.1%}",
        f"{row['duplicates']:,}",
        "/".join(_ms(row[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        f"{row['throughput']:,.0f}" if math.isfinite(row["throughput"] or math.nan) else "-",
        f"{row['errors']:,}",
        result_of(row),
    ]


def print_table(doc: dict[str, Any], console: Console) -> None:
    """The spike's result table, then the winner and its rationale."""
    table = Table(title="workclaim bench: claim strategies raced by real processes")
    for name in COLUMNS:
        table.add_column(name, justify="right" if name not in COLUMNS[:3] else "left")
    for row in doc["rows"]:
        style = None if row["status"] != "ok" or row["criteria"]["zero_duplicates"] else "red"
        table.add_row(*cells(row), style=style)
    console.print(table, width=max(console.width, 170))
    winner = doc["winner"]
    if winner.get("winner"):
        console.print(f"[bold]Winner: {winner['winner']}[/]  (rule: {winner['rule']})")
        console.print(winner["rationale"])
        per = winner.get("per_strategy", {})
        both = [n for n, a in per.items() if a["works_on_sqlite_and_postgres"]]
        if any("postgres" in a["backends"] for a in per.values()):
            console.print("Works on SQLite and PostgreSQL: " + (", ".join(both) or "none"))
        else:
            console.print("Works on SQLite and PostgreSQL: not measured (no --postgres)")


def markdown(doc: dict[str, Any]) -> str:
    """The report as Markdown: environment, table, criteria, winner."""
    env = doc["environment"]
    lines = [
        "# workclaim bench",
        "",
        f"workclaim {env['workclaim']} (commit {env.get('git_commit') or 'unknown'}), "
        f"Python {env['python']}, SQLite {env['sqlite']}, {env['cpu_count']} CPUs, "
        f"{env['platform']}; started {env['started_at']}, took {doc['elapsed_seconds']} s.",
        "",
        "Scenarios: "
        + "; ".join(
            f"`{s['name']}` ({s['workers']} workers, {s['items']} items, {s['runs']} runs)"
            for s in doc["scenarios"]
        ),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in doc["rows"]:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells(row)) + " |")
    lines += ["", "Criteria per row:"]
    lines += [f"- `{k}`: {v}" for k, v in doc["criteria"].items()]
    winner = doc["winner"]
    lines += ["", f"**Winner: {winner.get('winner')}** (rule: {winner['rule']}).", ""]
    lines.append(winner["rationale"])
    lines.append("")
    return "\n".join(lines)


def chart(doc: dict[str, Any], path: Path) -> Path | None:
    """p95 claim latency and throughput per strategy and backend (one bar group per scenario)."""
    rows = [r for r in doc["rows"] if r["status"] == "ok"]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['strategy']}\n{r['backend']}\n{r['scenario']}" for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8.0, 0.9 * len(rows)), 8), sharex=True)
    colors = ["tab:red" if not r["criteria"]["zero_duplicates"] else "tab:blue" for r in rows]
    top.bar(range(len(rows)), [r["p95_ms"] or 0 for r in rows], color=colors)
    top.set_ylabel("p95 claim latency (ms)")
    top.axhline(50, color="grey", linestyle="--", linewidth=1)
    bottom.bar(range(len(rows)), [r["throughput"] or 0 for r in rows], color=colors)
    bottom.set_ylabel("claims per second")
    bottom.set_xticks(range(len(rows)), labels, rotation=90, fontsize=7)
    top.set_title("workclaim bench (red: duplicates found)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(doc: dict[str, Any], out: Path) -> dict[str, str]:
    """bench.json, bench.md and bench.png under `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "markdown": out / "bench.md", "chart": out / "bench.png"}
    paths["json"].write_text(json.dumps(clean(doc), indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(doc), encoding="utf-8")
    written = {k: str(v) for k, v in paths.items() if k != "chart"}
    try:
        if chart(doc, paths["chart"]) is not None:
            written["chart"] = str(paths["chart"])
    except ImportError:
        written["chart"] = "skipped: matplotlib is not installed (pip install 'workclaim[bench]')"
    return written
