"""`workclaim top` in a pseudo-terminal, and `stats`/`top` as scripts use them.

The live view runs in a real pty (its own session, so Ctrl-C is a real SIGINT): the test reads
the screen until the expected rows appear or a deadline passes, changes the store, waits for the
next frames to show it, then quits with `q` (or Ctrl-C) and checks the exit status.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from workclaim import Lease, Queue
from workclaim._time import utcnow
from workclaim.models import QueueStats
from workclaim.top import run

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07]*\x07")
DEADLINE = 30.0


def counts_row(queue: str, *counts: int) -> re.Pattern[str]:
    """A queue's row: queued, claimed, expired, done, dead, cancelled in that order."""
    return re.compile(rf"(?<!\S){re.escape(queue)}\s+" + r"\s+".join(map(str, counts)) + r"\s")


class Terminal:
    """A child process on a pseudo-terminal, and everything it has drawn so far."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: its own session with the pty as controlling terminal
            try:
                # A shell gives its foreground job the default Ctrl-C; a runner that started
                # these tests in the background passes SIGINT on ignored, and so would exec.
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.raw = b""
        self.closed = False
        self.reaped = False

    def _pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
        if not ready:
            return
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if chunk:
            self.raw += chunk
        else:
            self.closed = True

    def text(self, since: int = 0) -> str:
        """What was drawn after byte `since`, without escape sequences."""
        return ANSI.sub("", self.raw[since:].decode(errors="replace"))

    def mark(self) -> int:
        return len(self.raw)

    def wait_for(self, *patterns: re.Pattern[str] | str, since: int = 0) -> str:
        """Read until every pattern has appeared after `since`; fail at the deadline."""
        deadline = time.monotonic() + DEADLINE
        while True:
            screen = self.text(since)
            if all(re.search(p, screen) for p in patterns):
                return screen
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                missing = [p for p in patterns if not re.search(p, screen)]
                drawn = "\n".join(line for line in screen.splitlines() if line.strip())
                raise AssertionError(f"never drew {missing}; screen so far:\n{drawn[-3000:]}")
            self._pump(left)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait_exit(self) -> int:
        """Read to the end of output, then reap the child; its exit status."""
        deadline = time.monotonic() + DEADLINE
        while not self.closed and (left := deadline - time.monotonic()) > 0:
            self._pump(left)
        if not self.closed:
            os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        self.reaped = True
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        """Kill and reap the child if a failed test left it running."""
        if not self.reaped:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            os.close(self.fd)


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, Lease]:
    """A SQLite store with `jobs`: 3 queued, 2 claimed (one overdue), 1 dead; and the live
    lease."""
    url = f"sqlite:///{tmp_path / 'top.db'}"
    an_hour_ago = utcnow() - timedelta(hours=1)
    with Queue(url) as q:
        q.enqueue_many("jobs", [1, 2, 3, 4], max_attempts=1)
        q.enqueue("jobs", 5, delay=3600)
        [dying] = q.claim("jobs", worker="w-dies")
        q.fail(dying, "kaboom: disk full", retry=False)
        [live] = q.claim("jobs", worker="w-live", lease_seconds=3600)
        # last, because a claim first reaps expired leases: a lease that ran out 59 minutes ago
        q.enqueue("jobs", 6, now=an_hour_ago)
        q.claim("jobs", worker="w-overdue", lease_seconds=60, now=an_hour_ago)
    return url, live


@pytest.fixture
def db(store: tuple[str, Lease]) -> str:
    return store[0]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKCLAIM_")}
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="50")
    env.pop("NO_COLOR", None)
    return env


def _top(db: str, *args: str) -> Terminal:
    argv = [sys.executable, "-m", "workclaim", "top", "--db", db, "--interval", "0.2", *args]
    return Terminal(argv, _env())


def test_top_shows_counts_leases_and_dead_items_updates_and_quits_on_q(
    store: tuple[str, Lease],
) -> None:
    db, live = store
    with _top(db) as term:
        screen = term.wait_for(
            counts_row("jobs", 3, 2, 1, 0, 1, 0),
            r"w-live\s+1/1\s+\d",  # a live lease with time left
            r"w-overdue\s+1/5\s+overdue",  # an expired lease not yet reaped
            r"kaboom: disk full",
        )
        assert "Traceback" not in screen

        mark = term.mark()
        with Queue(db) as q:
            q.enqueue_many("jobs", [7, 8])
            q.complete(live)
        term.wait_for(counts_row("jobs", 5, 1, 1, 1, 1, 0), r"done/s", since=mark)

        term.send(b"q")
        assert term.wait_exit() == 0


def test_top_quits_cleanly_on_ctrl_c(db: str) -> None:
    with _top(db) as term:
        term.wait_for(counts_row("jobs", 3, 2, 1, 0, 1, 0))
        term.send(b"\x03")  # the pty turns it into SIGINT for the foreground process
        assert term.wait_exit() == 0
        assert "Traceback" not in term.text()


class _CtrlCInAFinaliser:
    """Delivers SIGINT while it is being finalised: Python prints the KeyboardInterrupt that the
    default handler raises there and drops it, as it does in callbacks."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


class _InterruptedOnce(Queue):
    """A queue whose second refresh meets a Ctrl-C inside a finaliser."""

    calls = 0

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        self.calls += 1
        if self.calls == 2:
            _CtrlCInAFinaliser()
        return super().stats(queue, now=now)


def test_top_quits_on_a_ctrl_c_that_python_would_drop(db: str) -> None:
    """A Ctrl-C is a flag the view checks, not an exception that may be raised where Python
    drops it: the view stops after the frame of the refresh it came in (mutant: the default
    handler, whose KeyboardInterrupt inside the finaliser is dropped, and the view draws all
    five frames)."""
    out = io.StringIO()
    # As in a terminal (a background job, as under CI's runner, starts with SIGINT ignored).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _InterruptedOnce(db) as source:
            run(
                source,
                label="test",
                interval=0.01,
                iterations=5,
                console=Console(file=out, width=150),
            )
        assert out.getvalue().count("workclaim top") == 2
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, before)


def workclaim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workclaim", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**_env(), "COLUMNS": "150"},
    )


def test_top_once_and_iterations_print_frames_for_scripts(db: str) -> None:
    once = workclaim("top", "--db", db, "--once")
    assert once.returncode == 0, once.stderr
    assert counts_row("jobs", 3, 2, 1, 0, 1, 0).search(once.stdout)
    assert "kaboom" in once.stdout and "w-overdue" in once.stdout
    two = workclaim("top", "--db", db, "--iterations", "2", "--interval", "0.1", "-q", "jobs")
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("workclaim top") == 2
    # the second frame has rates (0.0/s here), the first only dashes
    assert re.search(r"jobs(\s+\d+){6}\s+0\.0\s+0\.0", two.stdout)


def test_stats_lists_every_queue_or_the_ones_asked_for(db: str) -> None:
    with Queue(db) as q:
        q.enqueue("alpha", 1)
    every = workclaim("stats", "--db", db, "--json")
    assert every.returncode == 0, every.stderr
    assert json.loads(every.stdout) == {
        "alpha": {"queued": 1, "claimed": 0, "expired": 0, "done": 0, "dead": 0, "cancelled": 0},
        "jobs": {"queued": 3, "claimed": 2, "expired": 1, "done": 0, "dead": 1, "cancelled": 0},
    }
    picked = workclaim("stats", "--db", db, "--queue", "jobs", "--json")
    assert list(json.loads(picked.stdout)) == ["jobs"]
    table = workclaim("stats", "--db", db)
    assert counts_row("jobs", 3, 2, 1, 0, 1, 0).search(table.stdout)
    assert counts_row("(all)", 4, 2, 1, 0, 1, 0).search(table.stdout)


def test_unreachable_store_or_server_is_one_line_and_exit_3(tmp_path: Path) -> None:
    from tests.support.http_process import free_port

    port = free_port()
    for args in (
        ["stats", "--db", f"postgresql://postgres:hunter2@127.0.0.1:{port}/test"],
        ["top", "--once", "--server", f"http://127.0.0.1:{port}", "--token", "wc_secret_token"],
        ["stats", "--db", f"redis://127.0.0.1:{port}/15"],
    ):
        result = workclaim(*args)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
        assert "hunter2" not in result.stderr and "wc_secret_token" not in result.stderr
    missing = workclaim("stats", "--db", f"sqlite:///{tmp_path / 'typo.db'}")
    assert missing.returncode == 1 and "no SQLite database" in missing.stderr
    assert not (tmp_path / "typo.db").exists()


def test_stats_and_top_read_a_server_the_same_way(db: str, tmp_path: Path) -> None:
    from tests.integration.test_logs_http import _token
    from tests.support.http_process import serve_process

    tokens = tmp_path / "tokens"
    token = _token(tokens, "admin")
    direct = workclaim("stats", "--db", db, "--json")
    with serve_process(db, "--tokens", str(tokens)) as base:
        over_http = workclaim("stats", "--server", base, "--token", token, "--json")
        assert over_http.returncode == 0, over_http.stderr
        assert json.loads(over_http.stdout) == json.loads(direct.stdout)
        once = workclaim("top", "--db", base, "--token", token, "--once")  # an http URL works too
        assert once.returncode == 0, once.stderr
        assert counts_row("jobs", 3, 2, 1, 0, 1, 0).search(once.stdout)
        assert "w-overdue" in once.stdout and "kaboom: disk full" in once.stdout
        refused = workclaim("stats", "--server", base, "--token", "wc_not_a_valid_token_at_all")
        assert refused.returncode == 1 and refused.stderr.startswith("error: ")


def test_top_shows_a_banner_while_the_server_is_away_and_still_quits(
    db: str, tmp_path: Path
) -> None:
    from tests.integration.test_logs_http import _token
    from tests.support.http_process import serve_process

    tokens = tmp_path / "tokens"
    env = {**_env(), "WORKCLAIM_TOKEN": _token(tokens, "admin")}
    term: Terminal | None = None
    try:
        with serve_process(db, "--tokens", str(tokens)) as base:
            argv = [sys.executable, "-m", "workclaim", "top", "--server", base, "-q", "jobs"]
            argv += ["--interval", "0.2", "--leases", "0", "--dead", "0"]
            term = Terminal(argv, env)
            term.wait_for(counts_row("jobs", 3, 2, 1, 0, 1, 0))
        mark = term.mark()  # the server has stopped: the last data stays, under a banner
        term.wait_for(
            r"unreachable: .*did not answer", counts_row("jobs", 3, 2, 1, 0, 1, 0), since=mark
        )
        term.send(b"q")
        assert term.wait_exit() == 0
    finally:
        if term is not None:
            term.__exit__()
