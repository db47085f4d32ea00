"""The soak table: one row per scenario run, printed at the end of the session and written to
`bench-results/soak.json` when the session runs the soak (`--soak` or WORKCLAIM_SOAK=1)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

ROWS: list[dict[str, Any]] = []
COLUMNS = (
    ("scenario", "scenario"),
    ("faults", "faults"),
    ("items", "items"),
    ("reclaims", "re-claims"),
    ("indeterminate", "indeterminate"),
    ("violations", "violations"),
    ("recovery_s", "recovery s"),
    ("max_reclaim_after_expiry_s", "re-claim after expiry s"),
    ("duplicate_executions", "dup. executions"),
    ("slowest_call_s", "slowest call s"),
    ("documented_loss", "documented loss"),
)


def add(row: dict[str, Any]) -> None:
    """Remember one scenario's figures."""
    ROWS.append(row)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        cells = ["-" if row.get(key) is None else str(row.get(key)) for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: Path, rows: list[dict[str, Any]], seconds: float) -> None:
    """bench-results/soak.json: the rows plus when, where and how long."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "wall_seconds": round(seconds, 1),
        "total_violations": sum(int(r.get("violations") or 0) for r in rows),
        "rows": rows,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.faults.report [bench-results/soak.json]`: print the last soak's table."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "bench-results/soak.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    print(table(doc["rows"]))
    print(
        f"\n{len(doc['rows'])} scenario runs in {doc['wall_seconds']:g} s, generated "
        f"{doc['generated_at']}; violations in total: {doc['total_violations']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
