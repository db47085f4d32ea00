"""The `workclaim` command: enqueue, stats, top, migrate, `queue policy|pause|resume`,
`schedule add|list|remove|run-now`, `scheduler`, and the commands its parts register.

Parts that live elsewhere (the benchmark, the HTTP service, the worker runtime) each have a
module with `register(app)`; this file only wires them in, so each part owns its commands.
Logging for every command is set up here, once, before the command runs (`logs.setup`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from workclaim import logs
from workclaim._version import __version__
from workclaim.api import QueueAPI
from workclaim.backends import open_backend
from workclaim.config import Settings
from workclaim.errors import BackendUnavailable, ValidationError, WorkclaimError
from workclaim.models import QueuePolicy, Rate, Schedule
from workclaim.monitor import is_server_url, open_source, snapshot
from workclaim.queue import Queue

app = typer.Typer(
    name="workclaim",
    help="Atomic work claiming with fenced leases on SQLite, PostgreSQL, Redis and MariaDB.",
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
        "--db",
        envvar="WORKCLAIM_DB",
        help="Database URL (sqlite:///, postgresql://, redis://, mariadb://).",
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
WriteServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="WORKCLAIM_SERVER",
        help="A `workclaim serve` URL (http:// or https://) to send to instead of --db.",
    ),
]
QueueOption = Annotated[
    list[str] | None,
    typer.Option("--queue", "-q", help="Only this queue (repeatable; default: every queue)."),
]

# Exit codes: 1 for an error the user can fix, 3 when the store or server did not answer.
EXIT_ERROR = 1
EXIT_UNREACHABLE = 3

# Commands that run for long and log as they go (INFO by default); others log warnings only.
LONG_RUNNING = frozenset({"serve", "worker", "scheduler"})


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


def print_wide(table: Table) -> None:
    """Print a table whole, even wider than the terminal (or than 80 columns into a pipe)."""
    wanted = console.measure(table, options=console.options.update_width(10_000)).maximum
    Console(width=max(console.width, wanted)).print(table)


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


def _explained(url: str, token: str | None, exc: WorkclaimError) -> str:
    """The error's message, saying how to pass a token when a server refused a call made
    without one."""
    if token is None and is_server_url(url) and getattr(exc, "status", None) == 401:
        return f"{exc} (the server wants a bearer token: pass --token or set WORKCLAIM_TOKEN)"
    return str(exc)


@contextlib.contextmanager
def _guarded(
    url: str, open_it: Callable[[], QueueAPI], token: str | None = None
) -> Iterator[QueueAPI]:
    """What `open_it` opens on `url`, closed afterwards; its errors, opening or in use, become
    one line and an exit code."""
    try:
        opened = open_it()
    except BackendUnavailable as exc:
        fail(f"{shown_url(url)}: {exc}", EXIT_UNREACHABLE)
        raise AssertionError("unreachable") from exc
    except WorkclaimError as exc:
        fail(_explained(url, token, exc))
        raise AssertionError("unreachable") from exc
    try:
        yield opened
    except BackendUnavailable as exc:
        fail(f"{shown_url(url)}: {exc}", EXIT_UNREACHABLE)
    except WorkclaimError as exc:
        fail(_explained(url, token, exc))
    finally:
        opened.close()


def reading(
    db: str, server: str | None, token: str | None
) -> contextlib.AbstractContextManager[QueueAPI]:
    """The source `stats` and `top` read (a server when --server or an http(s) --db is given)."""
    url = server or db
    return _guarded(url, lambda: open_source(url, token=token), token)


def writing(
    db: str, server: str | None, token: str | None
) -> contextlib.AbstractContextManager[QueueAPI]:
    """The store or server a command changes (a server when --server or an http(s) --db is
    given)."""
    url = server or db

    def open_target() -> QueueAPI:
        if is_server_url(url):
            from workclaim.client import Client

            return Client(url, token=token, timeout=10.0)
        return open_queue(url)

    return _guarded(url, open_target, token)


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
            help="workclaim's log level: debug, info, warning or error (default: info for serve, "
            "worker and scheduler, else warning); debug adds a record per claim and completion. "
            "(`serve --log-level` is uvicorn's own.)",
        ),
    ] = None,
) -> None:
    """workclaim: many workers, one queue, each item held by exactly one of them."""
    long_running = ctx.invoked_subcommand in LONG_RUNNING
    try:
        handler = logs.setup(
            fmt="json" if log_json else None,
            level=log_level,
            default_level="info" if long_running else "warning",
        )
    except WorkclaimError as exc:
        fail(str(exc), 2)
        return
    if not long_running and ctx.invoked_subcommand != "migrate":
        handler.addFilter(_quiet_durability)


def _quiet_durability(record: logging.LogRecord) -> bool:
    """A store's weak persistence is said by serve, worker and migrate; a quick command run again
    and again (stats, enqueue, ...) says it only at `--log-level info` or lower."""
    return not getattr(record, "durability", False) or logging.getLogger().level <= logging.INFO


@app.command()
def enqueue(
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    payload: Annotated[str, typer.Argument(help="JSON payload, or - to read JSON lines.")],
    db: DbOption = DEFAULT_DB,
    priority: Annotated[int, typer.Option(help="Lower runs first.")] = 0,
    delay: Annotated[float, typer.Option(help="Seconds before it may run.")] = 0.0,
    run_at: Annotated[
        str | None,
        typer.Option(
            "--run-at",
            metavar="ISO-TIME",
            help="When it may run, e.g. 2030-01-01T09:00:00+02:00 (UTC unless it names an "
            "offset). Not with --delay.",
        ),
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Executions allowed.")] = None,
    dedupe_key: Annotated[str | None, typer.Option(help="Skip if a live item has it.")] = None,
    group: Annotated[
        str | None, typer.Option(help="Flow-control group (default: the queue's default group).")
    ] = None,
    server: WriteServerOption = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="WORKCLAIM_TOKEN", help="Bearer token (enqueue scope) for a server."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an item (or, with -, one item per JSON line on stdin)."""
    try:
        lines = sys.stdin.read().splitlines() if payload == "-" else [payload]
        values = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        fail(f"payload is not valid JSON: {exc}")
        return
    options: dict[str, Any] = {
        "priority": priority,
        "delay": delay,
        "run_at": None if run_at is None else parse_time(run_at, "--run-at"),
        "max_attempts": max_attempts,
        "group": group,
    }
    with writing(db, server, token) as q:
        if len(values) == 1:
            ids = [q.enqueue(queue, values[0], dedupe_key=dedupe_key, **options)]
        else:
            ids = q.enqueue_many(queue, values, **options)
    if as_json:
        print(json.dumps({"ids": ids}))
    else:
        console.print(f"enqueued {len(ids)} item(s) on [bold]{queue}[/]: {ids}")


def parse_time(value: str, what: str) -> datetime:
    """An ISO 8601 time (`Z` or an offset; none means UTC)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        fail(f"{what} must be an ISO time such as 2030-01-01T09:00:00Z, got {value!r}", 2)
        raise AssertionError("unreachable") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


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
    from workclaim.top import COUNTS, queue_table, schedule_table

    named = [*(queues or ()), *(queue or ())]
    with reading(db, server, token) as source:
        snap = snapshot(source, named)
        policies = [source.policy(r.queue) for r in snap.stats]
        known = set(source.queues()) if named else set()
        schedules = [] if as_json else source.schedules()
    for name in dict.fromkeys(named):
        if name not in known:
            err_console.print(
                f"note: queue {name!r} is unknown here: it holds no item (a typo?)",
                highlight=False,
                soft_wrap=True,
            )
    if as_json:  # the counts-per-queue shape of before; `schedule list --json` has schedules
        shown: dict[str, dict[str, Any]] = {}
        for row, policy in zip(snap.stats, policies, strict=True):
            shown[row.queue] = {f: getattr(row, f) for f in COUNTS}
            if policy.limited:  # a queue without one keeps the counts-only shape of before
                shown[row.queue]["policy"] = policy_json(policy)
        print(json.dumps(shown))
        return
    table = queue_table(snap, None)
    table.columns = table.columns[: 1 + len(COUNTS)]  # no rates from a single snapshot
    table.title = None
    console.print(table)
    for policy in policies:
        if policy.limited:
            print(f"{policy.queue}: {policy_text(policy)}")
    if schedules:
        print_wide(schedule_table(schedules))


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


# -- one item: `workclaim item|history|requeue|cancel ID` -------------------------------------
ItemArgument = Annotated[int, typer.Argument(help="The item's id.")]
ItemTokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="WORKCLAIM_TOKEN",
        help="Bearer token for a server (item, history, cancel: enqueue or work on the item's "
        "queue; requeue: admin).",
    ),
]


def _json_line(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


@app.command()
def item(
    item_id: ItemArgument,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: ItemTokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one item: status, attempts, payload, result and its last error (with newlines)."""
    with reading(db, server, token) as source:
        found = source.get(item_id)
    fields = asdict(found)
    if as_json:
        print(_json_line(fields))
        return
    error = fields.pop("last_error")
    print(f"item {found.id} on {found.queue}: {found.status.value}")
    for name, value in fields.items():
        if name not in {"id", "queue", "status"} and value is not None:
            shown = _json_line(value) if name in {"payload", "result"} else value
            print(f"  {name}: {shown}")
    if error:
        print("  last_error:")
        for line in str(error).splitlines():
            print(f"    {line}")


@app.command()
def history(
    item_id: ItemArgument,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most events shown.")] = 100,
    newest: Annotated[bool, typer.Option("--newest", help="Newest first.")] = False,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: ItemTokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """The item's attempt history: one line per claim, heartbeat, failure, expiry, ..."""
    with reading(db, server, token) as source:
        events = source.history(item_id, limit=limit, newest_first=newest)
    if as_json:
        print(_json_line([asdict(e) for e in events]))
        return
    if not events:
        print(f"item {item_id}: no history (its queue keeps none, or it was never touched)")
    for e in events:
        line = f"{e.at.isoformat(timespec='milliseconds')} {e.kind.value} attempt={e.attempt}"
        line += f" status={e.status.value}"
        line += "".join(f" {k}={v}" for k, v in (("worker", e.worker), ("token", e.token)) if v)
        if e.error:
            line += f" error={_json_line(logs.clip(e.error.partition(chr(10))[0]))}"
        print(line)


@app.command()
def requeue(
    item_id: ItemArgument,
    max_attempts: Annotated[
        int | None, typer.Option(help="Executions allowed from now (default: as before).")
    ] = None,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: ItemTokenOption = None,
) -> None:
    """Move a dead item back to queued with fresh attempts."""
    with writing(db, server, token) as q:
        q.requeue(item_id, max_attempts=max_attempts)
    print(f"item {item_id}: queued")


@app.command()
def cancel(
    item_id: ItemArgument,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: ItemTokenOption = None,
) -> None:
    """Cancel a queued item (a claimed or finished one is refused)."""
    with writing(db, server, token) as q:
        q.cancel(item_id)
    print(f"item {item_id}: cancelled")


# -- flow control: `workclaim queue policy|pause|resume` --------------------------------------
queue_app = typer.Typer(
    name="queue",
    help="A queue's flow control: its limits (policy), pause and resume.",
    no_args_is_help=True,
)
app.add_typer(queue_app)
QueueArgument = Annotated[str, typer.Argument(help="Queue name.")]
LimitOption = Annotated[
    str | None, typer.Option(metavar="N|none", help="Most live leases (none: no limit).")
]


def _rate_text(rate: Rate | None) -> str:
    return "none" if rate is None else f"{rate.count}/{rate.per_seconds:g}s"


def policy_text(policy: QueuePolicy) -> str:
    """A policy on one line: `paused; concurrency 5, group_concurrency none, ...`."""
    limits = ", ".join(
        [
            f"concurrency {policy.concurrency or 'none'}",
            f"group_concurrency {policy.group_concurrency or 'none'}",
            f"rate {_rate_text(policy.rate)}",
            f"group_rate {_rate_text(policy.group_rate)}",
        ]
    )
    return f"{'paused' if policy.paused else 'active'}; {limits}"


def policy_json(policy: QueuePolicy) -> dict[str, Any]:
    """A policy as the HTTP API writes it (rates as `{"count", "per_seconds"}`)."""

    def rate(value: Rate | None) -> dict[str, Any] | None:
        return None if value is None else {"count": value.count, "per_seconds": value.per_seconds}

    return {
        "queue": policy.queue,
        "concurrency": policy.concurrency,
        "group_concurrency": policy.group_concurrency,
        "rate": rate(policy.rate),
        "group_rate": rate(policy.group_rate),
        "paused": policy.paused,
    }


def _show_policy(policy: QueuePolicy, as_json: bool) -> None:
    print(json.dumps(policy_json(policy)) if as_json else f"{policy.queue}: {policy_text(policy)}")


def parse_limit(value: str, what: str) -> int | None:
    """`--concurrency 5` (or `none`, no limit) as the limit; the range is checked by the
    library, like every other caller's."""
    if value.strip().lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{what} must be a whole number or none, got {value!r}") from None


def parse_rate(value: str, what: str) -> tuple[int, float] | None:
    """`--rate 100/60` (100 claims per 60 seconds; or `none`) as `(count, per_seconds)`."""
    if value.strip().lower() == "none":
        return None
    count, slash, seconds = value.partition("/")
    try:
        if not slash:
            raise ValueError
        return int(count), float(seconds)
    except ValueError:
        raise ValidationError(
            f"{what} must be COUNT/SECONDS (e.g. 100/60) or none, got {value!r}"
        ) from None


@queue_app.command("policy")
def queue_policy(
    queue: QueueArgument,
    concurrency: LimitOption = None,
    group_concurrency: Annotated[
        str | None,
        typer.Option(metavar="N|none", help="Most live leases in any one group (none: no limit)."),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(metavar="COUNT/SECONDS|none", help="Most claims of the queue per window."),
    ] = None,
    group_rate: Annotated[
        str | None,
        typer.Option(metavar="COUNT/SECONDS|none", help="Most claims of any one group per window."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Lift every limit (before applying any given).")
    ] = False,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the queue's policy, or change it: each limit given replaces that one (none lifts
    it), the others are kept (all lifted with --clear). The paused flag is never changed here."""
    given = {
        "concurrency": concurrency,
        "group_concurrency": group_concurrency,
        "rate": rate,
        "group_rate": group_rate,
    }
    with writing(db, server, token) as q:
        current = q.policy(queue)
        if not clear and all(v is None for v in given.values()):
            _show_policy(current, as_json)
            return
        base = QueuePolicy(queue) if clear else current
        limits: dict[str, Any] = {
            "concurrency": base.concurrency,
            "group_concurrency": base.group_concurrency,
            "rate": base.rate,
            "group_rate": base.group_rate,
        }
        for name, raw in given.items():
            if raw is not None:
                what = "--" + name.replace("_", "-")
                parse = parse_rate if name.endswith("rate") else parse_limit
                limits[name] = parse(raw, what)
        _show_policy(q.set_policy(queue, **limits), as_json)


@queue_app.command("pause")
def queue_pause(
    queue: QueueArgument,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause the queue: once this returns, no claim takes its items (live leases run on)."""
    with writing(db, server, token) as q:
        _show_policy(q.pause(queue), as_json)


@queue_app.command("resume")
def queue_resume(
    queue: QueueArgument,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Let claims take the queue's items again."""
    with writing(db, server, token) as q:
        _show_policy(q.resume(queue), as_json)


# -- schedules: `workclaim schedule add|list|remove|run-now`, `workclaim scheduler` -----------
schedule_app = typer.Typer(
    name="schedule",
    help="Periodic items: a cron expression enqueues an item per slot (docs/schedules.md).",
    no_args_is_help=True,
)
app.add_typer(schedule_app)
ScheduleArgument = Annotated[str, typer.Argument(help="Schedule name.")]


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    """A schedule for scripts (times as ISO 8601 UTC)."""

    def iso(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "name": schedule.name,
        "queue": schedule.queue,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "payload": schedule.payload,
        "priority": schedule.priority,
        "max_attempts": schedule.max_attempts,
        "group": schedule.group,
        "catch_up": schedule.catch_up.value,
        "enabled": schedule.enabled,
        "version": schedule.version,
        "set_at": iso(schedule.set_at),
        "next_slot": iso(schedule.next_slot),
        "last_slot": iso(schedule.last_slot),
        "last_item_id": schedule.last_item_id,
    }


@schedule_app.command("add")
def schedule_add(
    name: ScheduleArgument,
    queue: Annotated[str, typer.Option("--queue", "-q", help="The queue its items go to.")],
    cron: Annotated[
        str,
        typer.Option(
            help="Cron expression: 'min hour day month weekday' (a sixth field: seconds), or "
            "@hourly, @daily, @weekly, @monthly, @yearly."
        ),
    ],
    payload: Annotated[str, typer.Option(help="The items' JSON payload.")] = "null",
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone the expression is in.")] = "UTC",
    priority: Annotated[int, typer.Option(help="The items' priority (lower runs first).")] = 0,
    max_attempts: Annotated[int | None, typer.Option(help="The items' executions allowed.")] = None,
    group: Annotated[str | None, typer.Option(help="The items' flow-control group.")] = None,
    catch_up: Annotated[
        str,
        typer.Option(
            metavar="latest|none|all",
            help="Slots missed while no scheduler ran: enqueue the latest, none, or all.",
        ),
    ] = "latest",
    disabled: Annotated[bool, typer.Option("--disabled", help="Store it, but fire none.")] = False,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or replace the schedule NAME (declaring the same one again changes nothing)."""
    from workclaim.top import schedule_table

    try:
        value = json.loads(payload)
    except json.JSONDecodeError as exc:
        fail(f"--payload is not valid JSON: {exc}")
        return
    with writing(db, server, token) as q:
        stored = q.schedule(
            name,
            queue,
            cron,
            payload=value,
            timezone=tz,
            priority=priority,
            max_attempts=max_attempts,
            group=group,
            catch_up=catch_up,
            enabled=not disabled,
        )
    if as_json:
        print(json.dumps(schedule_json(stored)))
    else:
        print_wide(schedule_table([stored]))


@schedule_app.command("list")
def schedule_list(
    db: DbOption = DEFAULT_DB,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every schedule: its queue, cron, time zone, whether enabled, next and last slot (UTC)
    and the last item it enqueued."""
    from workclaim.top import schedule_table

    with reading(db, server, token) as source:
        found = source.schedules()
    if as_json:
        print(json.dumps([schedule_json(s) for s in found]))
    elif found:
        print_wide(schedule_table(found))
    else:
        console.print("no schedules")


@schedule_app.command("remove")
def schedule_remove(
    name: ScheduleArgument,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: TokenOption = None,
) -> None:
    """Delete the schedule NAME (the items it enqueued stay)."""
    with writing(db, server, token) as q:
        existed = q.unschedule(name)
    if not existed:
        fail(f"no schedule named {name!r}")
    console.print(f"removed schedule {escape(name)}")


@schedule_app.command("run-now")
def schedule_run_now(
    name: ScheduleArgument,
    db: DbOption = DEFAULT_DB,
    server: WriteServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enqueue the schedule's item once now, outside its slots; prints the item's id."""
    with writing(db, server, token) as q:
        item_id = q.run_schedule_now(name)
    print(json.dumps({"id": item_id}) if as_json else item_id)


@app.command()
def scheduler(db: DbOption = DEFAULT_DB) -> None:
    """Fire the store's schedules until SIGTERM or SIGINT, with no worker (any number of
    schedulers may run: each slot is enqueued once)."""
    from workclaim.scheduler import scheduler_on

    if is_server_url(db):
        fail("a scheduler needs the store (--db URL); the service runs one: serve --scheduler")
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)  # only a flag: the main thread stops the scheduler

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log = logging.getLogger("workclaim.scheduler")
    try:
        with scheduler_on(db, Settings.from_env()) as running:
            log.info("scheduler: firing the schedules of %s", shown_url(db))
            while running.is_alive() and not stopping:
                time.sleep(0.2)
            if stopping:
                log.info("signal %d: stopping", stopping[0])
        if not stopping:
            fail("the scheduler ended: the store failed (see the log above)")
    except BackendUnavailable as exc:
        fail(f"{shown_url(db)}: {exc}", EXIT_UNREACHABLE)
    except WorkclaimError as exc:
        fail(str(exc))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
