"""Where a SQLite claim+complete spends its CPU: each statement of workclaim's claim path timed
alone (process CPU time, so other processes' load matters less than for wall time), history on
and off, next to the raw baseline's statements (benchmarks/raw/sqlite.py). One process, one
connection, `synchronous=normal` by default (no fsync: the CPU cost, not the disk's).

    .venv/bin/python -m benchmarks.sqlite_profile --items 4000 --reps 3

Not a test: figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.raw import sqlite as raw

from workclaim import Queue, Settings
from workclaim.backends.sqlite.backend import Q

NOW = 10**16  # microseconds: every item is due, no lease expires


def _fresh(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-wclock"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def _connect(path: str, sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {sync}")
    # The single-statement writes read the time as workclaim_now() (connection.py).
    conn.create_function("workclaim_now", 0, lambda: NOW)
    return conn


def workclaim_steps(path: str, items: int, history: bool, sync: str) -> dict[str, float]:
    """Microseconds of CPU per item for each statement of claim (one item) + complete."""
    _fresh(path)
    with Queue(f"sqlite:///{path}", settings=Settings(history=history)) as q:
        for start in range(0, items, 1000):
            q.enqueue_many("q", [{}] * min(1000, items - start))
    conn = _connect(path, sync)
    spent = dict.fromkeys(("BEGIN+COMMIT", "reap probe", "claim", "advance token", "complete"), 0.0)
    clock = time.process_time
    claim = {"now": NOW, "worker": "w", "lease_us": 10**9, "limit": 1, "queue": "q"}
    for _ in range(items):
        t0 = clock()
        conn.execute("BEGIN IMMEDIATE")
        t1 = clock()
        expired, managed = conn.execute(Q["probe_one"], claim).fetchone()
        if expired or managed:  # never, here
            conn.execute(Q["reap_expired"], {"now": NOW, "limit": 100, "queues": '["q"]'})
        t2 = clock()
        row = conn.execute(Q["claim_one_queue"], claim).fetchall()[0]
        t3 = clock()
        conn.execute(Q["advance_token"], {"n": 1})
        t4 = clock()
        conn.execute("COMMIT")
        t5 = clock()
        fence = {"id": row[0], "token": row[3], "worker": "w", "now": NOW, "result": None}
        conn.execute(Q["complete"], fence).fetchall()
        t6 = clock()
        spent["BEGIN+COMMIT"] += (t1 - t0) + (t5 - t4)
        spent["reap probe"] += t2 - t1
        spent["claim"] += t3 - t2
        spent["advance token"] += t4 - t3
        spent["complete"] += t6 - t5
    conn.close()
    return {k: v / items * 1e6 for k, v in spent.items()}


def raw_steps(path: str, items: int, sync: str) -> dict[str, float]:
    """The same split for the raw baseline's claim transaction and completion."""
    url = f"sqlite:///{path}?synchronous={sync.lower()}"
    raw.prefill(url, items)
    worker = raw.open_worker(url)
    clock = time.process_time
    claim = complete = 0.0
    for _ in range(items):
        t0 = clock()
        [(item_id, token)] = worker.claim(1)
        t1 = clock()
        worker.complete(item_id, token)
        t2 = clock()
        claim += t1 - t0
        complete += t2 - t1
    worker.close()
    return {"claim txn": claim / items * 1e6, "complete": complete / items * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--synchronous", choices=("normal", "full"), default="normal")
    args = parser.parse_args(argv)
    path = str(Path(tempfile.gettempdir()) / f"workclaim-profile-{os.getpid()}.db")
    sync = args.synchronous.upper()
    try:
        runs: dict[str, list[dict[str, float]]] = {"history on": [], "history off": [], "raw": []}
        for _ in range(args.reps):  # interleaved, so drift hits all alike
            runs["history on"].append(workclaim_steps(path, args.items, True, sync))
            runs["history off"].append(workclaim_steps(path, args.items, False, sync))
            runs["raw"].append(raw_steps(path, args.items, sync))
    finally:
        _fresh(path)
        _fresh(path + ".raw")
    print(f"CPU microseconds per item, medians of {args.reps}; load {os.getloadavg()}")
    for name, reps in runs.items():
        steps = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
        detail = "  ".join(f"{k} {v:.1f}" for k, v in steps.items())
        print(f"  {name:<12} total {sum(steps.values()):6.1f}   {detail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
