"""`workclaim top`: a live terminal view of the queues, refreshed like `top`.

Each refresh takes a `monitor.snapshot` (counts, live leases, recent dead items) and renders it
with rich; rates come from the previous snapshot. In a terminal the view owns the screen and
reads keys in cbreak mode: `q` quits, any other key refreshes now; Ctrl-C quits too. Without a
terminal, or with `--once`/`--iterations`, frames are printed one after another, for scripts.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from workclaim.api import QueueAPI
from workclaim.errors import WorkclaimError
from workclaim.models import QueueStats, Schedule
from workclaim.monitor import Rates, Snapshot, rates, snapshot

try:  # POSIX only; elsewhere Ctrl-C is the way out
    import termios
    import tty

    HAVE_TERMIOS = True
except ImportError:  # pragma: no cover
    HAVE_TERMIOS = False

COUNTS = ("queued", "claimed", "expired", "done", "dead", "cancelled")
QUIT_KEYS = frozenset({"q", "Q"})
# How soon the view notices a Ctrl-C while it waits for a key or the next refresh.
_TICK = 0.1
_ERROR_WIDTH = 60


def _seconds(value: float) -> str:
    if abs(value) < 60:
        return f"{value:.1f}s"
    if abs(value) < 3600:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _one_line(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= _ERROR_WIDTH else flat[: _ERROR_WIDTH - 1] + "…"


def _table(*headers: str, title: str) -> Table:
    """A compact table (no vertical rules) so nine columns fit in 80."""
    return Table(
        *headers,
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        show_edge=False,
    )


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def schedule_table(schedules: Sequence[Schedule]) -> Table:
    """What fires where: each schedule's queue, cron, time zone, whether it is enabled, its next
    and last slot (UTC) and the last item it enqueued."""
    table = _table(
        "schedule",
        "queue",
        "cron",
        "tz",
        "on",
        "next (UTC)",
        "last (UTC)",
        "item",
        title="schedules",
    )
    for s in schedules:
        table.add_row(
            s.name,
            s.queue,
            s.cron,
            s.timezone,
            "yes" if s.enabled else "no",
            _when(s.next_slot),
            _when(s.last_slot),
            "-" if s.last_item_id is None else str(s.last_item_id),
        )
    return table


def queue_table(snap: Snapshot, speed: dict[str, Rates] | None) -> Table:
    """Counts per queue (and a total row), with claimed/s and completed/s when known."""
    table = _table("queue", *COUNTS, "claimed/s", "done/s", title="queues")
    for column in table.columns[1:]:
        column.justify = "right"
    rows: list[QueueStats] = list(snap.stats)
    total = snap.total() if len(rows) > 1 else None
    if total is not None:
        rows.append(total)
    for row in rows:
        if row is total:
            rate = _sum_rates(speed) if speed is not None else None
            table.add_section()
        else:
            rate = None if speed is None else speed.get(row.queue)
        cells = [str(getattr(row, name)) for name in COUNTS]
        if row.expired:
            cells[2] = f"[bold red]{row.expired}[/]"
        if row.dead:
            cells[4] = f"[red]{row.dead}[/]"
        table.add_row(
            row.queue,
            *cells,
            "-" if rate is None else f"{rate.claimed:.1f}",
            "-" if rate is None else f"{rate.completed:.1f}",
        )
    if not rows:
        table.add_row("(no queues yet)", *[""] * (len(COUNTS) + 2))
    return table


def _sum_rates(speed: dict[str, Rates]) -> Rates:
    return Rates(
        claimed=sum(r.claimed for r in speed.values()),
        completed=sum(r.completed for r in speed.values()),
    )


def lease_table(snap: Snapshot, now: datetime) -> Table:
    """Live leases, soonest expiry first; overdue ones (expired, not yet reaped) in red."""
    table = _table("item", "queue", "worker", "attempt", "expires in", title="live leases")
    table.columns[0].justify = table.columns[3].justify = table.columns[4].justify = "right"
    for item in snap.leases:
        left = (item.expires_at - now).total_seconds() if item.expires_at else 0.0
        attempt = f"{item.attempts}/{item.max_attempts}"
        if left < 0:
            table.add_row(
                str(item.id),
                item.queue,
                item.worker or "",
                attempt,
                f"overdue {_seconds(-left)}",
                style="bold red",
            )
        else:
            table.add_row(str(item.id), item.queue, item.worker or "", attempt, _seconds(left))
    if not snap.leases:
        table.add_row("", "(none)", "", "", "")
    return table


def dead_table(snap: Snapshot, now: datetime) -> Table:
    """Recently dead items with their last error."""
    table = _table("item", "queue", "attempts", "died", "last error", title="recent dead items")
    table.columns[0].justify = table.columns[2].justify = table.columns[3].justify = "right"
    for item in snap.dead:
        ago = _seconds((now - item.updated_at).total_seconds()) + " ago"
        error = Text(_one_line(item.last_error))  # plain text: an error may contain [brackets]
        table.add_row(str(item.id), item.queue, str(item.attempts), ago, error)
    if not snap.dead:
        table.add_row("", "(none)", "", "", "")
    return table


def render(
    snap: Snapshot,
    speed: dict[str, Rates] | None,
    *,
    source: str,
    interval: float,
    problem: str | None = None,
) -> RenderableType:
    """One frame of the view."""
    now = snap.at
    head = Text.assemble(
        ("workclaim top", "bold"),
        f"  {source}  {now:%H:%M:%S} UTC  every {interval:g}s  ",
        ("q", "bold"),
        " quits",
    )
    parts: list[RenderableType] = [head]
    if problem:
        parts.append(Text(f"unreachable: {problem} (showing the last data; retrying)", "bold red"))
    for table in (queue_table(snap, speed), lease_table(snap, now), dead_table(snap, now)):
        parts += [Text(""), table]
    if snap.partial:
        parts.append(Text(f"(lists cut short: too many {', '.join(sorted(snap.partial))})"))
    return Group(*parts)


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """A function that waits up to N seconds for a key and returns it (None on timeout); in
    cbreak mode while a terminal is on stdin (restored on exit), else it only waits."""
    if not HAVE_TERMIOS or not sys.stdin.isatty():

        def wait_only(seconds: float) -> str | None:
            time.sleep(max(seconds, 0.0))
            return None

        yield wait_only
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read_key(seconds: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], max(seconds, 0.0))
        if not ready:
            return None
        data = os.read(fd, 32)
        return data.decode(errors="replace")[:1] or None

    try:
        yield read_key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _interrupts() -> Iterator[threading.Event]:
    """Ctrl-C as a flag the view checks between steps, not a KeyboardInterrupt raised wherever
    the process happens to be: Python prints and drops one raised inside a finaliser or a
    callback, and the view would go on drawing. Only the main thread may handle signals;
    elsewhere the flag stays unset and Ctrl-C raises as usual. Where SIGINT is ignored (a
    background job) it stays ignored."""
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
        yield stop
        return
    signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def run(
    source: QueueAPI,
    *,
    label: str,
    queues: Sequence[str] = (),
    interval: float = 2.0,
    iterations: int | None = None,
    leases: int = 15,
    dead: int = 8,
    console: Console | None = None,
) -> None:
    """Refresh every `interval` seconds until `q`, Ctrl-C, or `iterations` frames.

    The first snapshot's error propagates (nothing to show); later ones keep the last data on
    screen under an "unreachable" banner and the view keeps trying.
    """
    out = console or Console()
    current = snapshot(source, queues, leases=leases, dead=dead)
    previous: Snapshot | None = None
    problem: str | None = None
    live = out.is_terminal and iterations is None  # a counted run prints its frames
    shown = 0
    with _interrupts() as stop, _keys() as read_key, _screen(out, live) as show:
        while True:
            speed = rates(previous, current) if previous is not None else None
            show(render(current, speed, source=label, interval=interval, problem=problem))
            shown += 1
            if iterations is not None and shown >= iterations:
                return
            deadline = time.monotonic() + interval
            while (left := deadline - time.monotonic()) > 0:
                if stop.is_set():
                    return
                key = read_key(min(left, _TICK))
                if key in QUIT_KEYS:
                    return
                if key is not None:
                    break  # any other key: refresh now
            if stop.is_set():
                return
            try:
                fresh = snapshot(source, queues, leases=leases, dead=dead)
            except WorkclaimError as exc:
                problem = str(exc)
                continue
            previous, current, problem = current, fresh, None


@contextlib.contextmanager
def _screen(out: Console, live: bool) -> Iterator[Callable[[RenderableType], None]]:
    """Show frames on the alternate screen (live) or print them one after another."""
    if not live:
        yield out.print
        return
    with Live(console=out, screen=True, auto_refresh=False, transient=True) as view:
        yield lambda frame: view.update(frame, refresh=True)
