"""The checker's command line: `python -m workclaim.bench.history FILES... [--final state.json]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from workclaim.bench.history.checking import STORE_SLACK_US, check_files


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
    parser.add_argument(
        "--store-slack-us",
        type=int,
        default=STORE_SLACK_US,
        help="uncertainty of a recorded store-clock time (flow-control checks)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        final = None
        if args.final is not None:
            raw = json.loads(args.final.read_text(encoding="utf-8"))
            final = {int(k): str(v) for k, v in raw.items()}
        result = check_files(
            args.files,
            final_state=final,
            clock_slack_ns=round(args.slack_ms * 1e6),
            store_slack_us=args.store_slack_us,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0 if result.ok else 1
