"""MariaDB under faults, on a throwaway `mariadbd`: SIGKILL of the server and restart under load,
`KILL CONNECTION` loops on the workers' sessions, and a fault proxy (latency, RST, blackhole)
between the workers and the server. No worker or queue is restarted; each scenario ends with heal,
drain and the checker (the same scenarios and sizes as test_postgres.py)."""

from __future__ import annotations

import contextlib
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.faults import report
from tests.faults.harness import FaultRun, call_seconds, start_workers
from tests.faults.servers import mariadb_server, proxied
from tests.support.faultproxy import FaultProxy
from workclaim.bench.history import load_history

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]
__all__ = ["mariadb_server"]

TIMEOUT = 1.0  # Settings.timeout of the workers: the deadline of one store call


def _assert_clean(outcome: Any) -> None:
    assert outcome.violations == 0, outcome.describe()


@pytest.mark.parametrize("crashes", [2, pytest.param(8, marks=pytest.mark.soak)])
def test_crash_restart_under_load(
    mariadb_server: Any, tmp_path: Path, runs: list[FaultRun], crashes: int
) -> None:
    """SIGKILL mariadbd while four workers claim and complete; restart it on the same data
    directory (InnoDB crash recovery); the workers ride it out and nothing is lost or doubled."""
    url = mariadb_server.database_url()
    run = FaultRun(f"mariadb: crash (SIGKILL) x{crashes}", url, tmp_path, timeout=TIMEOUT)
    runs.append(run)
    run.enqueue(300 * crashes)
    workers = start_workers(run, "m", 4)
    for crash in range(crashes):
        run.wait_until_done(100 * (crash + 1))  # work flows before each crash
        mariadb_server.crash()
        run.faults += 1
        time.sleep(0.5)  # the outage
        mariadb_server.start()
    heal = time.monotonic_ns()
    assert run.wait_until_finished(120)
    assert all(w.is_alive() for w in workers), "a worker died instead of riding out the restart"
    outcome = run.finish(recovery_from_ns=heal)
    _assert_clean(outcome)
    assert outcome.indeterminate > 0, "no call was in flight at a crash: nothing was tested"


def _kill_loop(server: Any, database: str, stop: threading.Event, every: float) -> int:
    """`KILL CONNECTION` every session on `database` but this one, every `every` seconds."""
    import MySQLdb

    killed = 0
    while not stop.wait(every):
        try:
            conn = MySQLdb.connect(
                host="127.0.0.1", port=server.port, user="root", connect_timeout=5, autocommit=True
            )
        except MySQLdb.Error:
            continue
        with closing(conn), closing(conn.cursor()) as cur:
            try:
                cur.execute(
                    "SELECT id FROM information_schema.PROCESSLIST "
                    "WHERE db = %s AND id <> CONNECTION_ID()",
                    (database,),
                )
                sessions = [int(row[0]) for row in cur.fetchall()]
            except MySQLdb.Error:
                continue
            for session in sessions:
                with contextlib.suppress(MySQLdb.Error):  # it may have ended by itself meanwhile
                    cur.execute(f"KILL CONNECTION {session}")
                    killed += 1
    return killed


@pytest.mark.parametrize("seconds", [3.0, pytest.param(30.0, marks=pytest.mark.soak)])
def test_kill_connection_loop(
    mariadb_server: Any, tmp_path: Path, runs: list[FaultRun], seconds: float
) -> None:
    """Kill every session of the workers' database twenty times a second: some kills land inside
    a claim's transaction, at its COMMIT, or in a complete or heartbeat. The workers reconnect
    (a lost session is retried once on a fresh one) and the history stays clean. (At five kills a
    second, a runner that ignored a failed COMMIT got through one run in two.)"""
    url = mariadb_server.database_url()
    database = url.rsplit("/", 1)[1]
    run = FaultRun(f"mariadb: KILL CONNECTION {seconds:g}s", url, tmp_path, timeout=TIMEOUT)
    runs.append(run)
    run.enqueue(int(150 * seconds))
    workers = start_workers(run, "m", 4)
    run.wait_until_done(50)  # every worker has its sessions open before the killing starts
    stop = threading.Event()
    result: list[int] = []
    killer = threading.Thread(
        target=lambda: result.append(_kill_loop(mariadb_server, database, stop, 0.05)),
        daemon=True,
    )
    killer.start()
    time.sleep(seconds)  # the fault's duration
    stop.set()
    killer.join(30)
    heal = time.monotonic_ns()
    run.faults += result[0] if result else 0
    assert run.faults >= 5, f"the loop killed {run.faults} sessions: it missed the workers'"
    assert run.wait_until_finished(120)
    assert all(w.is_alive() for w in workers), "a worker died instead of reconnecting"
    outcome = run.finish(recovery_from_ns=heal)
    _assert_clean(outcome)


def _proxy_schedule(proxy: FaultProxy, run: FaultRun, blackhole: float) -> None:
    steps: list[tuple[str, float]] = [
        ("pass", 0.5),
        ("latency:100", 1.0),
        ("latency:300", 1.0),
        ("reset", 0.3),
        ("reset", 0.3),
        ("reset", 0.3),
        ("blackhole", blackhole),
        ("refuse", 0.5),
    ]
    for mode, seconds in steps:
        if mode == "reset":
            proxy.set_mode("pass")
            proxy.reset_all()
        else:
            proxy.set_mode(mode)
        if mode != "pass":
            run.faults += 1
        time.sleep(seconds)  # how long this fault lasts
    proxy.set_mode("pass")


# The CI blackhole outlasts the deadline bound, so a call without a client-side deadline shows.
@pytest.mark.parametrize("blackhole", [8.0, pytest.param(15.0, marks=pytest.mark.soak)])
def test_network_faults_respect_deadlines(
    mariadb_server: Any, tmp_path: Path, runs: list[FaultRun], blackhole: float
) -> None:
    url = mariadb_server.database_url()
    run = FaultRun(
        f"mariadb: proxy latency/RST/blackhole ({blackhole:g}s blackhole)",
        url,
        tmp_path,
        timeout=TIMEOUT,
    )
    runs.append(run)
    run.enqueue(400)
    with FaultProxy("127.0.0.1", mariadb_server.port) as proxy:
        workers = start_workers(run, "m", 3, url=proxied(url, proxy.port))
        run.wait_until_done(30)  # the workers are through the proxy before its faults start
        _proxy_schedule(proxy, run, blackhole)
        heal = time.monotonic_ns()
        assert run.wait_until_finished(120)
        assert all(w.is_alive() for w in workers)
        outcome = run.finish(recovery_from_ns=heal)
    _assert_clean(outcome)
    events = load_history(run.dir.glob("m*.jsonl"))
    slowest = max(call_seconds(events, kinds=("claim", "heartbeat", "complete", "release", "fail")))
    report.ROWS[-1]["slowest_call_s"] = round(slowest, 3)
    # claim waits up to idle_wait; a call may take one pool checkout, a connect and a retry.
    bound = 0.2 + 4 * TIMEOUT + 2.0
    assert slowest <= bound, f"MariaDB call hung {slowest:.1f}s (bound {bound:.1f}s)"
    # A call the network broke has an unknown outcome (`info`), raised as BackendUnavailable.
    unknown = [str(e.get("error")) for e in events if e["phase"] == "info"]
    assert unknown, "no call failed: the workers never went through the proxy's faults"
    unclear = [e for e in unknown if not e.startswith("BackendUnavailable: ")]
    assert not unclear, f"a network fault surfaced as something else: {unclear[:3]}"
