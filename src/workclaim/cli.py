"""The `workclaim` command: enqueue, stats, top, migrate, and the commands its parts register.

Parts that live elsewhere (the benchmark, the HTTP service, the worker runtime) each have a
module with `register(app)`; this file only wires them in, so each part owns its commands.
Logging for every command is set up here, once, before the command runs (`logs.setup`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape

from workclaim import logs
from workclaim._version import __version__
from workclaim.api import QueueAPI
from workclaim.backends import open_backend
from workclaim.config import Settings
from workclaim.errors import BackendUnavailable, WorkclaimError
from workclaim.monitor import open_source, snapshot
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
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="WORKCLAIM_SERVER",
        help="A `workclaim serve` URL (http:// or https://) to read instead of --db.",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(envvar="WORKCLAIM_TOKEN", help="Bearer token (admin scope) for a server URL."),
]
QueueOption = Annotated[
    list[str] | None,
    typer.Option("--queue", "-q", help="Only this queue (repeatable; default: every queue)."),
]

# Exit codes: 1 for an error the user can fix, 3 when the store or server did not answer.
EXIT_ERROR = 1
EXIT_UNREACHABLE = 3

# Commands that run for long and log as they go (INFO by default); others log warnings only.
LONG_RUNNING = frozenset({"serve", "worker"})


@dataclass(frozen=True)
class Part:
    """A module that adds its own commands with `register(app)`, and the optional extra its
    imports need (None: nothing optional, so any ImportError there is a bug to show)."""

    module: str
    commands: tuple[str, ...]
    extra: str | None


PARTS = (
    Part("workclaim.bench.cli", ("bench", "demo"), "bench"),
    Part("workclaim.server.cli", ("serve", "token"), "server"),
    Part("workclaim.worker_cli", ("worker",), None),
)


def open_queue(db: str, **settings_overrides: Any) -> Queue:
    """A Queue for a CLI command, with settings from WORKCLAIM_* variables."""
    settings = Settings.from_env()
    if settings_overrides:
        settings = settings.with_changes(**settings_overrides)
    return Queue(db, settings=settings)


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print an error the way every command does, and exit."""
    line = " ".join(message.split())  # one line, whatever the driver's message looked like
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def shown_url(url: str) -> str:
    """The URL with any password replaced by `***`, for headers and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def reading(db: str, server: str | None, token: str | None) -> Iterator[QueueAPI]:
    """The source `stats` and `top` read (a server when --server or an http(s) --db is given),
    closed afterwards; its errors become one line and an exit code."""
    url = server or db
    try:
        source = open_source(url, token=token)
    except BackendUnavailable as exc:
        fail(f"{shown_url(url)}: {exc}", EXIT_UNREACHABLE)
        raise AssertionError("unreachable") from exc
    except WorkclaimError as exc:
        fail(str(exc))
        raise AssertionError("unreachable") from exc
    try:
        yield source
    except BackendUnavailable as exc:
        fail(f"{shown_url(url)}: {exc}", EXIT_UNREACHABLE)
    except WorkclaimError as exc:
        fail(str(exc))
    finally:
        source.close()


def _version(value: bool) -> None:
    if value:
        console.print(f"workclaim {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    log_json: Annotated[
        bool,
        typer.Option("--log-json", help="Log JSON lines to stderr (or WORKCLAIM_LOG_FORMAT=json)."),
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            envvar=logs.LEVEL_ENV,
            help="workclaim's log level: debug, info, warning or error (default: info for serve "
            "and worker, else warning); debug adds a record per claim and completion. "
            "(`serve --log-level` is uvicorn's own.)",
        ),
    ] = None,
) -> None:
    """workclaim: many workers, one queue, each item held by exactly one of them."""
    default = "info" if ctx.invoked_subcommand in LONG_RUNNING else "warning"
    try:
        logs.setup(fmt="json" if log_json else None, level=log_level, default_level=default)
    except WorkclaimError as exc:
        fail(str(exc), 2)


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
    queues: Annotated[
        list[str] | None, typer.Argument(help="Queue names (default: every queue).")
    ] = None,
    queue: QueueOption = None,
    db: DbOption = DEFAULT_DB,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Counts per status (and expired leases) for every queue, or the ones named."""
    from workclaim.top import COUNTS, queue_table

    with reading(db, server, token) as source:
        snap = snapshot(source, [*(queues or ()), *(queue or ())])
    if as_json:
        print(json.dumps({r.queue: {f: getattr(r, f) for f in COUNTS} for r in snap.stats}))
        return
    table = queue_table(snap, None)
    table.columns = table.columns[: 1 + len(COUNTS)]  # no rates from a single snapshot
    table.title = None
    console.print(table)


@app.command()
def top(
    queue: QueueOption = None,
    db: DbOption = DEFAULT_DB,
    server: ServerOption = None,
    token: TokenOption = None,
    interval: Annotated[
        float, typer.Option("--interval", "-n", min=0.1, help="Seconds between refreshes.")
    ] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    iterations: Annotated[
        int | None, typer.Option("--iterations", min=1, help="Exit after N frames.")
    ] = None,
    leases: Annotated[int, typer.Option(min=0, help="Live leases to list.")] = 15,
    dead: Annotated[int, typer.Option(min=0, help="Recent dead items to list.")] = 8,
) -> None:
    """A live view of the queues, like top; q or Ctrl-C quits.

    Counts per queue, claimed and completed per second, live leases (overdue ones in red) and
    recent dead items with their last error.
    """
    from workclaim.top import run

    url = server or db
    # Ctrl-C is how a live view is left: exit 0
    with reading(db, server, token) as source, contextlib.suppress(KeyboardInterrupt):
        run(
            source,
            label=shown_url(url),
            queues=queue or (),
            interval=interval,
            iterations=1 if once else iterations,
            leases=leases,
            dead=dead,
            console=console,
        )


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


def register_parts(target: typer.Typer, parts: Sequence[Part] = PARTS) -> None:
    """Add each part's commands. A part whose optional package is not installed still gets its
    commands, which say which extra to install; any other ImportError (one inside workclaim,
    or from a package that is installed but broken) is raised, never hidden."""
    for part in parts:
        try:
            module = importlib.import_module(part.module)
        except ImportError as exc:
            missing = missing_package(exc)
            if part.extra is None or missing is None:
                raise
            for command in part.commands:
                _add_stand_in(target, command, part.extra, missing)
            continue
        module.register(target)


def missing_package(exc: ImportError) -> str | None:
    """The third-party package whose absence raised `exc`, or None if `exc` is anything else."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.partition(".")[0]
    if top == "workclaim":
        return None
    try:
        installed = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        installed = True  # there, but broken: not a missing extra
    return None if installed else top


def _add_stand_in(target: typer.Typer, command: str, extra: str, missing: str) -> None:
    """`workclaim COMMAND ...` that only says which extra to install (any arguments)."""
    install = f"pip install 'workclaim[{extra}]'"

    def stand_in() -> None:
        fail(
            f"`workclaim {command}` needs the {extra} extra ({missing} is not installed): {install}"
        )

    target.command(
        command,
        help=escape(f"Not installed: {install}"),  # rich would read [extra] as markup
        context_settings={
            "allow_extra_args": True,
            "ignore_unknown_options": True,
            "help_option_names": [],
        },
    )(stand_in)


register_parts(app)


def main() -> None:
    """Entry point of the `workclaim` console script."""
    app()
