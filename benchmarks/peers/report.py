"""Medians over repetitions, ratios to workclaim pair by pair, and the Markdown/JSON/PNG output."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import systems

METRICS = ("items_per_s", "p50_ms", "p95_ms", "p99_ms")

# Issue 8's targets, as (system, workers, least workclaim/system items/s, most p95 ratio): each
# system is compared with its reference row (`systems.reference`: the worker runtime for peers
# once it exists, else the single-claim Queue row; the same-size Queue row for raw baselines).
TARGETS = [
    ("pgqueuer", 10, 1.5, 1 / 3),
    ("procrastinate", 10, 3.0, None),
    ("huey", 10, 3.0, None),
    ("saq", 10, 3.0, None),
    ("rq", 10, 3.0, None),
    ("raw-sqlite", 10, 0.85, None),
    ("raw-postgres", 10, 0.85, None),
    ("raw-redis", 10, 0.85, None),
    ("raw-mariadb", 10, 0.85, None),
    ("raw-sqlite-batch", 10, 0.8, None),
    ("raw-postgres-batch", 10, 0.8, None),
    ("raw-redis-batch", 10, 0.8, None),
    ("raw-mariadb-batch", 10, 0.8, None),
]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def progress_line(row: dict[str, Any]) -> str:
    status = "ok" if not row.get("error") else f"ERROR {row['error']}"
    return (
        f"rep {row.get('rep', 0)} {row['system']:26} {row['workers']:3d} workers "
        f"{_fmt(row.get('items_per_s'), 0):>8} items/s p95 {_fmt(row.get('p95_ms'))} ms "
        f"dup {row.get('duplicates', '-')} missing {row.get('missing', '-')} {status}"
    )


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def summarise(
    runs: list[dict[str, Any]],
    args: Any,
    env: dict[str, Any],
    wall: float,
    notes: dict[str, str],
    claims: dict[str, str],
    history: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Median rows, with per-repetition ratios to workclaim reduced to their median."""
    by_key: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    index: dict[tuple[str, int, int], dict[str, Any]] = {}
    for run in runs:
        by_key[(run["system"], run["workers"])].append(run)
        index[(run["system"], run["workers"], run["rep"])] = run
    present = {run["system"] for run in runs}
    rows = []
    for (name, workers), reps in by_key.items():
        row: dict[str, Any] = {
            "system": name,
            "backend": reps[0]["backend"],
            "workers": workers,
            "reps": len(reps),
            "history": (history or {}).get(name, ""),
        }
        for metric in METRICS:
            row[metric] = _median([r.get(metric) for r in reps])
        row["duplicates"] = sum(r.get("duplicates") or 0 for r in reps)
        row["missing"] = sum(r.get("missing") or 0 for r in reps)
        row["unexpected"] = sum(r.get("unexpected") or 0 for r in reps)
        row["errors"] = [r["error"] for r in reps if r.get("error")]
        backend = reps[0]["backend"]
        base = systems.reference(name, backend, present)
        row["vs"] = base
        row["ratios"] = {}
        if base:
            refs = [
                base,
                f"workclaim-{backend}",
                f"workclaim-worker-{backend}",
                f"workclaim-worker-{backend}-nohistory",
            ]
            for ref in dict.fromkeys(r for r in refs if r in present):
                pairs = [(r, index.get((ref, workers, r["rep"]))) for r in reps]
                # workclaim's items/s over this row's (above 1: workclaim is faster), and
                # workclaim's claim p95 over this row's, run for run, then the median
                row["ratios"][ref] = {
                    "speedup": _median(
                        [_ratio(b.get("items_per_s"), r.get("items_per_s")) for r, b in pairs if b]
                    ),
                    "p95_ratio": _median(
                        [_ratio(b.get("p95_ms"), r.get("p95_ms")) for r, b in pairs if b]
                    ),
                }
            row["wc_speedup"] = row["ratios"].get(base, {}).get("speedup")
            row["wc_p95_ratio"] = row["ratios"].get(base, {}).get("p95_ratio")
        rows.append(row)
    order = {name: i for i, name in enumerate([*systems.REGISTRY, *systems.EXTRA])}
    rows.sort(key=lambda r: (r["backend"], r["workers"], order.get(r["system"], 99)))
    return {
        "config": {
            "items": args.items,
            "workers": args.workers,
            "reps": args.reps,
            "redis_persistence": env.get("redis_persistence"),
            "postgres": "throwaway cluster" if args.pg_url == "auto" else "given URL",
            "mariadb": "throwaway server" if args.mariadb_url == "auto" else "given URL",
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "wall_seconds": round(wall, 1),
            "load_average": {
                "start": env.get("load_start"),
                "end": [round(x, 2) for x in os.getloadavg()],
            },
        },
        "notes": notes,
        "claim_timed": claims,
        "rows": rows,
        "runs": runs,
        "targets": check_targets(rows),
    }


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target against every workclaim row it was measured with (Queue and runtime)."""
    found = {(r["system"], r["workers"]): r for r in rows}
    out = []
    for peer, workers, min_speedup, max_p95 in TARGETS:
        row = found.get((peer, workers))
        if row is None:
            continue
        for ref, ratio in row.get("ratios", {}).items():
            if peer.startswith("raw-") and ref != row["vs"]:
                continue  # a raw baseline is held against the same-size Queue row only
            speedup, p95 = ratio["speedup"], ratio["p95_ratio"]
            ok = speedup is not None and speedup >= min_speedup
            if max_p95 is not None:
                ok = ok and p95 is not None and p95 <= max_p95
            out.append({
                "backend": row["backend"], "workers": workers, "system": peer, "workclaim": ref,
                "speedup": speedup, "want_speedup": min_speedup,
                "p95_ratio": p95, "want_p95_ratio": max_p95, "met": ok,
            })  # fmt: skip
    return out


def _loads(values: list[float] | None) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "-"


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        f"Peer benchmark: {cfg['items']} no-op items, workers {cfg['workers']}, medians of "
        f"{cfg['reps']} repetition(s); Redis persistence {cfg['redis_persistence']}; "
        f"wall {cfg['wall_seconds']} s; load average (1/5/15 min) at the start "
        f"{_loads(cfg.get('load_average', {}).get('start'))}, at the end "
        f"{_loads(cfg.get('load_average', {}).get('end'))}"
        + ("." if cfg.get("complete", True) else " (partial)."),
        "",
        "| backend | system | history | workers | items/s | vs | workclaim x | p50 ms | p95 ms "
        "| p99 ms | p95 vs workclaim | dup | missing |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        err = " (error)" if r["errors"] else ""
        lines.append(
            f"| {r['backend']} | {r['system']}{err} | {r.get('history', '')} | {r['workers']} "
            f"| {_fmt(r['items_per_s'], 0)} "
            f"| {r.get('vs') or ''} | {_fmt(r.get('wc_speedup'))} | {_fmt(r['p50_ms'])} "
            f"| {_fmt(r['p95_ms'])} "
            f"| {_fmt(r['p99_ms'])} | {_fmt(r.get('wc_p95_ratio'))} | {r['duplicates']} "
            f"| {r['missing']} |"
        )
    lines += [
        "",
        "`workclaim x` = workclaim's items/s over this row's, per repetition, median "
        "(above 1: workclaim is faster); `p95 vs workclaim` = workclaim's claim p95 over this "
        "row's; `vs` names the workclaim row compared with, run for run; `history`: workclaim's "
        "attempt history (Settings.history, on by default) for its rows.",
    ]
    if result["targets"]:
        lines += ["", "| target | want | got | met |", "|---|---|---|---|"]
        for t in result["targets"]:
            want = f">= {t['want_speedup']}x items/s"
            got = f"{_fmt(t['speedup'])}x"
            if t["want_p95_ratio"] is not None:
                want += f", p95 <= {t['want_p95_ratio']:.2f}x"
                got += f", p95 {_fmt(t['p95_ratio'])}x"
            label = f"{t['workclaim']} vs {t['system']}, {t['workers']} workers"
            lines.append(f"| {label} | {want} | {got} | {'yes' if t['met'] else 'no'} |")
    lines += ["", "What the claim latency times, per system:", ""]
    lines += [f"- {name}: {note}" for name, note in result["claim_timed"].items()]
    lines += ["", "Configuration, per system:", ""]
    lines += [f"- {name}: {note}" for name, note in result["notes"].items()]
    errors = [(r["system"], r["workers"], e) for r in result["rows"] for e in r["errors"]]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {s} x{w}: {e}" for s, w, e in errors]
    return "\n".join(lines) + "\n"


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = sorted({r["backend"] for r in result["rows"]})
    fig, axes = plt.subplots(1, len(backends), figsize=(6 * len(backends), 6), squeeze=False)
    palette = plt.get_cmap("tab20")
    colour = {name: palette(i % 20) for i, name in enumerate([*systems.REGISTRY, *systems.EXTRA])}
    for ax, backend in zip(axes[0], backends, strict=True):
        rows = [r for r in result["rows"] if r["backend"] == backend]
        names = list(dict.fromkeys(r["system"] for r in rows))
        workers = sorted({r["workers"] for r in rows})
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            values = {r["workers"]: r["items_per_s"] or 0 for r in rows if r["system"] == name}
            xs = [w + (i - (len(names) - 1) / 2) * width for w in range(len(workers))]
            heights = [values.get(w, 0) for w in workers]
            ax.bar(xs, heights, width, label=name, color=colour.get(name))
        ax.set_xticks(range(len(workers)), [str(w) for w in workers])
        ax.set_xlabel("worker processes")
        ax.set_ylabel("items/s (median)")
        ax.set_yscale("log")
        ax.set_title(backend)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle(f"Drain {result['config']['items']} no-op items (indicative: shared 2-core host)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict[str, Any], out: Path, *, quiet: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(markdown(result))
    chart(result, out / "results.png")
    if not quiet:
        print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
