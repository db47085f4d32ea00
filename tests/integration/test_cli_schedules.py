"""Schedules from the command line, and who fires them: `workclaim schedule ...`, a worker's
scheduler thread (`--no-scheduler` off), `workclaim scheduler` alone, `serve --scheduler`.

Every process here is a real `workclaim` subprocess; a test waits, with a deadline, for the item
a `* * * * * *` (every second) schedule enqueues to appear in the store.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.support.http_process import free_port
from workclaim import Queue, Status
from workclaim.worker import Context

ROOT = Path(__file__).parents[2]
EVERY_SECOND = "* * * * * *"


def noop(ctx: Context) -> None:
    """The handler of the workers here: the items only have to exist."""


def workclaim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workclaim", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@contextmanager
def running(*args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`workclaim ARGS` in the background, its output in `log`; killed if still running."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workclaim", *args], stdout=out, stderr=out, cwd=ROOT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def stop(proc: subprocess.Popen[bytes], log: Path) -> str:
    """SIGTERM, then the exit code must be 0; returns the process's output."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()
    return log.read_text()


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until `condition()`, for at most 60 s; fails at once if the process died."""
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, log.read_text()
        if time.monotonic() > deadline:
            pytest.fail(f"not within 60 s; the process said:\n{log.read_text()}")
        time.sleep(0.1)


def fired(db: str, name: str = "tick") -> int | None:
    """The id of the last item the schedule enqueued (None: none yet)."""
    with Queue(db) as q:
        return q.get_schedule(name).last_item_id


def done(db: str, item_id: int) -> bool:
    with Queue(db) as q:
        return q.get(item_id).status is Status.DONE


def add_every_second(db: str, name: str = "tick") -> None:
    with Queue(db) as q:
        q.schedule(name, "ticks", EVERY_SECOND, payload={"from": name})


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'w.db'}"


# -- the schedule commands -------------------------------------------------------------------
@pytest.mark.parametrize("backend_name", ["sqlite", "mariadb"])
def test_add_list_run_now_remove(store_url: str) -> None:
    db = store_url
    added = workclaim(
        "schedule", "add", "report", "--queue", "reports", "--cron", "30 2 * * *",
        "--tz", "Europe/Berlin", "--payload", '{"kind": "daily"}', "--priority", "3",
        "--max-attempts", "2", "--group", "acme", "--catch-up", "none", "--db", db, "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = json.loads(added.stdout)
    assert shown["name"] == "report" and shown["cron"] == "30 2 * * *"
    assert shown["timezone"] == "Europe/Berlin" and shown["catch_up"] == "none"
    assert shown["enabled"] is True and shown["next_slot"] is not None
    listed = workclaim("schedule", "list", "--db", db, "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["payload"] == {"kind": "daily"} and row["priority"] == 3
    assert row["max_attempts"] == 2 and row["group"] == "acme"
    assert row["last_slot"] is None and row["last_item_id"] is None
    table = workclaim("schedule", "list", "--db", db)
    assert "report" in table.stdout and "Europe/Berlin" in table.stdout

    now = workclaim("schedule", "run-now", "report", "--db", db)
    assert now.returncode == 0, now.stderr
    item_id = int(now.stdout)
    with Queue(db) as q:
        item = q.get(item_id)
    assert item.queue == "reports" and item.payload == {"kind": "daily"}
    assert item.priority == 3 and item.max_attempts == 2 and item.group == "acme"

    removed = workclaim("schedule", "remove", "report", "--db", db)
    assert removed.returncode == 0, removed.stderr
    again = workclaim("schedule", "remove", "report", "--db", db)
    assert again.returncode == 1 and "no schedule named 'report'" in again.stderr
    assert json.loads(workclaim("schedule", "list", "--db", db, "--json").stdout) == []
    gone = workclaim("schedule", "run-now", "report", "--db", db)
    assert gone.returncode == 1 and "no schedule named 'report'" in gone.stderr


def test_disabled_schedules_are_stored_with_no_next_slot(db: str) -> None:
    added = workclaim(
        "schedule", "add", "off", "-q", "q", "--cron", "@hourly", "--disabled", "--db", db, "--json"
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["enabled"] is False
    assert json.loads(added.stdout)["next_slot"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "61 * * * *"], "invalid cron expression '61 * * * *'"),
        (["--cron", "* * *"], "invalid cron expression"),
        (["--cron", "@hourly", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["--cron", "@hourly", "--catch-up", "some"], "invalid catch_up 'some'"),
        (["--cron", "@hourly", "--payload", "{nope"], "--payload is not valid JSON"),
    ],
)
def test_bad_input_is_one_clear_line_exit_1_and_stores_nothing(
    db: str, args: list[str], message: str
) -> None:
    result = workclaim("schedule", "add", "s", "--queue", "q", *args, "--db", db)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    with Queue(db) as q:
        assert q.schedules() == []


def test_stats_lists_the_schedules(db: str) -> None:
    added = workclaim("schedule", "add", "nightly", "-q", "q", "--cron", "@daily", "--db", db)
    assert added.returncode == 0, added.stderr
    result = workclaim("stats", "--db", db)
    assert result.returncode == 0, result.stderr
    assert "schedules" in result.stdout and "nightly" in result.stdout
    assert "@daily" in result.stdout
    counts = workclaim("stats", "--db", db, "--json")
    assert "nightly" not in counts.stdout  # the JSON keeps its counts-per-queue shape


# -- who fires them --------------------------------------------------------------------------
WORKER = ("worker", "tests.integration.test_cli_schedules:noop", "--queue", "ticks", "--wait", "1")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend_name", ["sqlite", "postgres", "redis", "mariadb"])
def test_a_worker_fires_the_schedules_and_stops_cleanly(store_url: str, tmp_path: Path) -> None:
    db = store_url
    add_every_second(db)
    log = tmp_path / "worker.log"
    with running(*WORKER, "--db", db, log=log) as proc:
        wait_until(lambda: fired(db) is not None, proc, log)
        output = stop(proc, log)
    assert "scheduler on" in output
    with Queue(db) as q:
        item = q.get(q.get_schedule("tick").last_item_id or 0)
    assert item.queue == "ticks" and item.payload == {"from": "tick"}
    assert (item.dedupe_key or "").startswith("schedule:tick:")


@pytest.mark.timeout(120)
def test_a_worker_with_no_scheduler_fires_nothing(db: str, tmp_path: Path) -> None:
    add_every_second(db)
    with Queue(db) as q:
        marker = q.enqueue("ticks", "marker")
    log = tmp_path / "worker.log"
    with running(*WORKER, "--db", db, "--no-scheduler", log=log) as proc:
        wait_until(lambda: done(db, marker), proc, log)
        # Three slots pass while it works; a scheduler would have fired them.
        with Queue(db) as q:
            until = q.backend.store_now().timestamp() + 3
            wait_until(lambda: q.backend.store_now().timestamp() > until, proc, log)
        output = stop(proc, log)
    assert fired(db) is None
    assert "no scheduler" in output


@pytest.mark.timeout(120)
def test_workclaim_scheduler_fires_and_sigterm_stops_it(db: str, tmp_path: Path) -> None:
    add_every_second(db)
    log = tmp_path / "scheduler.log"
    with running("scheduler", "--db", db, log=log) as proc:
        wait_until(lambda: fired(db) is not None, proc, log)
        output = stop(proc, log)
    assert "scheduler stopped" in output
    assert "fire" in output  # each slot fired is logged at INFO


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend_name", ["sqlite", "postgres", "redis", "mariadb"])
def test_two_schedulers_enqueue_each_slot_once(store_url: str, tmp_path: Path) -> None:
    """Two `workclaim scheduler` processes on one store, ten every-second schedules: each
    schedule's slots between its first and last fired have one item each, and the items the two
    schedulers say they enqueued add up to the items there are."""
    db = store_url
    names = [f"tick{n}" for n in range(10)]
    for name in names:
        add_every_second(db, name)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with (
        running("scheduler", "--db", db, log=logs[0]) as a,
        running("scheduler", "--db", db, log=logs[1]) as b,
    ):
        for proc, log in ((a, logs[0]), (b, logs[1])):  # both up (SIGTERM is theirs now)
            wait_until(partial(said, log, "firing the schedules"), proc, log)
        wait_until(partial(items_at_least, db, 60), a, logs[0])
        outputs = [stop(a, logs[0]), stop(b, logs[1])]
    with Queue(db) as q:
        total = q.stats("ticks").total
        keys = sorted(item.dedupe_key or "" for item in q.items("ticks", limit=1000))
    assert len(keys) == total and len(set(keys)) == total, keys
    for name in names:
        mine = [k.rpartition(":")[2] for k in keys if k.startswith(f"schedule:{name}:")]
        slots = [datetime.strptime(k, "%Y%m%dT%H%M%SZ") for k in mine]
        assert slots and slots == [slots[0] + timedelta(seconds=n) for n in range(len(slots))]
    enqueued = [int(re.findall(r"scheduler stopped: (\d+) item", o)[-1]) for o in outputs]
    assert sum(enqueued) == total, (enqueued, total)


@pytest.mark.timeout(120)
def test_a_scheduler_killed_mid_run_loses_and_doubles_no_slot(db: str, tmp_path: Path) -> None:
    """SIGKILL a `workclaim scheduler` while it fires ten schedules, start another: the slots it
    missed meanwhile are on time (under 60 s late) and fire, none fires twice."""
    names = [f"tick{n}" for n in range(10)]
    for name in names:
        add_every_second(db, name)
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    with running("scheduler", "--db", db, log=first) as proc:
        wait_until(partial(items_at_least, db, 25), proc, first)
        proc.kill()
        proc.wait(30)
    with Queue(db) as q:
        before = q.stats("ticks").total
    with running("scheduler", "--db", db, log=second) as proc:
        wait_until(partial(items_at_least, db, before + 25), proc, second)
        stop(proc, second)
    with Queue(db) as q:
        total = q.stats("ticks").total
        keys = sorted(item.dedupe_key or "" for item in q.items("ticks", limit=1000))
    assert len(keys) == total and len(set(keys)) == total, keys
    for name in names:
        mine = [k.rpartition(":")[2] for k in keys if k.startswith(f"schedule:{name}:")]
        slots = [datetime.strptime(k, "%Y%m%dT%H%M%SZ") for k in mine]
        assert slots == [slots[0] + timedelta(seconds=n) for n in range(len(slots))], name


def said(log: Path, text: str) -> bool:
    return text in log.read_text()


def items_at_least(db: str, count: int) -> bool:
    with Queue(db) as q:
        return q.stats("ticks").total >= count


def test_scheduler_refuses_a_server_url() -> None:
    result = workclaim("scheduler", "--db", "http://127.0.0.1:1")
    assert result.returncode == 1 and "serve --scheduler" in result.stderr


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend_name", ["sqlite", "mariadb"])
def test_serve_scheduler_fires_and_an_http_worker_runs_none(store_url: str, tmp_path: Path) -> None:
    """`serve --scheduler` fires a schedule declared through it (`schedule add --server`); the
    schedule commands work over HTTP; a worker over HTTP runs no scheduler and says so."""
    db = store_url
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
    serve = ("serve", "--db", db, "--no-auth", "--port", str(port), "--scheduler")
    over_http = ("--server", url)
    with running(*serve, log=serve_log) as server:
        wait_until(partial(ready, url), server, serve_log)
        added = workclaim(
            "schedule", "add", "tick", "-q", "ticks", "--cron", EVERY_SECOND, *over_http
        )
        assert added.returncode == 0, added.stderr
        wait_until(lambda: fired(db) is not None, server, serve_log)
        listed = workclaim("schedule", "list", "--json", *over_http)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)[0]["last_item_id"] is not None
        now = workclaim("schedule", "run-now", "tick", *over_http)
        assert now.returncode == 0, now.stderr
        with Queue(db) as q:
            assert q.get(int(now.stdout)).payload is None
        assert workclaim("schedule", "remove", "tick", *over_http).returncode == 0
        gone = workclaim("schedule", "remove", "tick", *over_http)
        assert gone.returncode == 1 and "no schedule named 'tick'" in gone.stderr
        with running(*WORKER, "--server", url, log=worker_log) as worker:
            wait_until(partial(said, worker_log, "claiming from"), worker, worker_log)
            output = stop(worker, worker_log)
        server.send_signal(signal.SIGTERM)  # serve ends as uvicorn does: by the signal
        assert server.wait(60) in (0, -signal.SIGTERM), serve_log.read_text()
    assert "no scheduler (over HTTP" in output
    assert "scheduler stopped" in serve_log.read_text()  # before the process ended


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
