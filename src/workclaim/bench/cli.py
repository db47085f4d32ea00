"""`workclaim bench` (the spike, reproducible) and `workclaim demo` (the README's first command)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from workclaim.bench.report import clean, print_table, write_outputs
from workclaim.bench.runner import BenchOptions, RowProgress, run_bench
from workclaim.bench.scenarios import SCENARIOS, Scenario, resolve
from workclaim.bench.strategies import STRATEGIES
from workclaim.errors import WorkclaimError

# Off a terminal (piped, CI logs) rich would squeeze the wide table into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 180)
err_console = Console(stderr=True)


@contextmanager
def _progress(enabled: bool) -> Iterator[RowProgress | None]:
    """A progress bar per bench row on stderr (none with --json or off a terminal)."""
    if not enabled:
        yield None
        return
    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bar:

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        yield update


def _check_strategies(names: list[str] | None) -> list[str]:
    chosen = names or list(STRATEGIES)
    unknown = [n for n in chosen if n not in STRATEGIES]
    if unknown:
        raise typer.BadParameter(f"unknown strategy {unknown}; choose from {', '.join(STRATEGIES)}")
    return chosen


def _failed_rows(doc: dict[str, Any]) -> list[str]:
    """Rows of strategies meant to be correct that showed duplicates or violations."""
    return [
        f"{r['strategy']}/{r['backend']}/{r['scenario']}"
        for r in doc["rows"]
        if r["status"] == "ok"
        and STRATEGIES[r["strategy"]].correct
        and not r["criteria"]["zero_duplicates"]
    ]


def bench(
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            "--strategy", "-s", help=f"Strategies (default all): {', '.join(STRATEGIES)}."
        ),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(help=f"Scenarios (default the spike's two): {', '.join(SCENARIOS)}."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Custom: worker processes.")] = None,
    items: Annotated[int | None, typer.Option(help="Custom: items per run.")] = None,
    runs: Annotated[int | None, typer.Option(help="Custom: runs.")] = None,
    postgres: Annotated[
        str | None,
        typer.Option(envvar="WORKCLAIM_BENCH_POSTGRES", help="Also race on this PostgreSQL."),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(envvar="WORKCLAIM_BENCH_REDIS", help="Also race on this Redis."),
    ] = None,
    mariadb: Annotated[
        str | None,
        typer.Option(
            envvar="WORKCLAIM_BENCH_MARIADB",
            help="Also race on this MariaDB (each row makes and drops a database of its own).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for bench.json/.md/.png.")] = Path(
        "bench-results"
    ),
    keep_histories: Annotated[
        bool, typer.Option(help="Keep every row's history files under OUT/histories.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON document.")] = False,
) -> None:
    """Race every claim strategy with real processes on every backend; name the winner."""
    try:
        options = BenchOptions(
            strategies=_check_strategies(strategy),
            scenarios=resolve(scenario or [], workers=workers, items=items, runs=runs),
            postgres_url=postgres or None,
            redis_url=redis or None,
            mariadb_url=mariadb or None,
            keep_histories=out / "histories" if keep_histories else None,
        )
    except WorkclaimError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with _progress(not as_json and err_console.is_terminal) as progress:
        doc = run_bench(options, progress)
    written = write_outputs(doc, out)
    if as_json:
        print(json.dumps(clean({**doc, "outputs": written})))
    else:
        print_table(doc, console)
        console.print("wrote " + ", ".join(written.values()))
    if _failed_rows(doc):
        if not as_json:
            err_console.print(
                "[red]duplicates where there must be none:[/] " + ", ".join(_failed_rows(doc))
            )
        raise typer.Exit(1)


def demo(
    workers: Annotated[
        list[int] | None, typer.Option(help="Worker processes of the race (repeatable).")
    ] = None,
    items: Annotated[int, typer.Option(help="Items of the race.")] = 3_000,
    runs: Annotated[int, typer.Option(help="Runs of each spike scenario.")] = 50,
    out: Annotated[Path, typer.Option(help="Directory for bench.json/.md/.png.")] = Path(
        "bench-results"
    ),
) -> None:
    """The README's first command: the spike's table on embedded SQLite, then a race of worker
    processes over a few thousand items (items/s, claim p50/p95/p99, duplicates)."""
    counts = workers or [8]
    spike = BenchOptions(
        strategies=list(STRATEGIES),
        scenarios=resolve(["spike-2x10", "spike-10x10"], runs=runs if runs != 50 else None),
    )
    race = BenchOptions(
        strategies=["skip-locked"],
        scenarios=[Scenario(f"race-{n}p", n, items, 1, "the demo's race") for n in counts],
    )
    with _progress(err_console.is_terminal) as progress:
        spike_doc = run_bench(spike, progress)
        race_doc = run_bench(race, progress)
    print_table(spike_doc, console)
    console.print()
    for row in race_doc["rows"]:
        if row["status"] != "ok":
            console.print(f"race {row['scenario']}: {row['status']} {row.get('reason', '')}")
            continue
        console.print(
            f"[bold]race[/] skip-locked on SQLite, {row['workers']} worker processes, "
            f"{row['items']:,} items: {row['completed'] / row['wall_seconds']:,.0f} items/s, "
            f"claim p50/p95/p99 {row['p50_ms']:.2f}/{row['p95_ms']:.2f}/{row['p99_ms']:.2f} ms, "
            f"duplicates = {row['duplicates']}, lost = {row['check']['violations']['lost_item']}, "
            f"checker: {'OK' if row['check']['ok'] else 'VIOLATIONS'}"
        )
    merged = {**spike_doc, "race": race_doc["rows"]}
    written = write_outputs(merged, out)
    console.print("wrote " + ", ".join(written.values()))
    if _failed_rows(spike_doc) or _failed_rows(race_doc):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `bench` and `demo` to the `workclaim` command."""
    app.command("bench")(bench)
    app.command("demo")(demo)
