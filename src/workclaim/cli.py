"""The `workclaim` command: enqueue, stats, migrate, and the commands its parts register.

Parts that live elsewhere (the benchmark, the HTTP service, the worker runtime) each have a
module with `register(app)`; this file only wires them in, so each part owns its commands.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from workclaim._version import __version__
from workclaim.backends import open_backend
from workclaim.config import Settings
from workclaim.errors import WorkclaimError
from workclaim.queue import Queue

app = typer.Typer(
    name="workclaim",
    help="Atomic work claiming with fenced leases on SQLite, PostgreSQL and Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DEFAULT_DB = "sqlite:///workclaim.db"
DbOption = Annotated[
    str,
    typer.Option(
        "--db", envvar="WORKCLAIM_DB", help="Database URL (sqlite:///, postgresql://, redis://)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

# Modules that add their own commands with `register(app)`; missing ones are skipped.
COMMAND_MODULES = (
    "workclaim.bench.cli",
    "workclaim.server.cli",
    "workclaim.worker_cli",
)


def open_queue(db: str, **settings_overrides: Any) -> Queue:
    """A Queue for a CLI command, with settings from WORKCLAIM_* variables."""
    settings = Settings.from_env()
    if settings_overrides:
        settings = settings.with_changes(**settings_overrides)
    return Queue(db, settings=settings)


def fail(message: str, code: int = 1) -> None:
    """Print an error the way every command does, and exit."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        console.print(f"workclaim {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """workclaim: many workers, one queue, each item held by exactly one of them."""


@app.command()
def enqueue(
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    payload: Annotated[str, typer.Argument(help="JSON payload, or - to read JSON lines.")],
    db: DbOption = DEFAULT_DB,
    priority: Annotated[int, typer.Option(help="Lower runs first.")] = 0,
    delay: Annotated[float, typer.Option(help="Seconds before it may run.")] = 0.0,
    max_attempts: Annotated[int | None, typer.Option(help="Executions allowed.")] = None,
    dedupe_key: Annotated[str | None, typer.Option(help="Skip if a live item has it.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an item (or, with -, one item per JSON line on stdin)."""
    try:
        lines = sys.stdin.read().splitlines() if payload == "-" else [payload]
        values = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        fail(f"payload is not valid JSON: {exc}")
        return
    try:
        with open_queue(db) as q:
            if len(values) == 1:
                ids = [
                    q.enqueue(
                        queue,
                        values[0],
                        priority=priority,
                        delay=delay,
                        max_attempts=max_attempts,
                        dedupe_key=dedupe_key,
                    )
                ]
            else:
                ids = q.enqueue_many(
                    queue, values, priority=priority, delay=delay, max_attempts=max_attempts
                )
    except WorkclaimError as exc:
        fail(str(exc))
        return
    if as_json:
        print(json.dumps({"ids": ids}))
    else:
        console.print(f"enqueued {len(ids)} item(s) on [bold]{queue}[/]: {ids}")


@app.command()
def stats(
    queues: Annotated[list[str], typer.Argument(help="Queue names.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Counts per status (and expired leases) for each queue."""
    try:
        with open_queue(db) as q:
            rows = [q.stats(name) for name in queues]
    except WorkclaimError as exc:
        fail(str(exc))
        return
    fields = ("queued", "claimed", "expired", "done", "dead", "cancelled")
    if as_json:
        print(json.dumps({r.queue: {f: getattr(r, f) for f in fields} for r in rows}))
        return
    table = Table("queue", *fields)
    for r in rows:
        table.add_row(r.queue, *(str(getattr(r, f)) for f in fields))
    console.print(table)


@app.command()
def migrate(db: DbOption = DEFAULT_DB) -> None:
    """Create or upgrade the schema (for deployments that turn auto-migration off)."""
    try:
        backend = open_backend(db, Settings.from_env())
        try:
            backend.migrate()
        finally:
            backend.close()
    except WorkclaimError as exc:
        fail(str(exc))
        return
    console.print("schema is up to date")


def _register_parts() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name is not None and exc.name.startswith("workclaim"):
                continue  # that part is not in this version
            continue  # its optional dependency is missing; the part explains itself when used
        module.register(app)


_register_parts()


def main() -> None:
    """Entry point of the `workclaim` console script."""
    app()
