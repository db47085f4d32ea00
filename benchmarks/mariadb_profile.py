"""Where a MariaDB claim+complete spends its round trips and time: workclaim against the raw
baseline, one process, counted at the driver.

Every request MySQLdb sends (`query`, `commit`, `rollback`, `ping`; a multi-statement query is
one request) is counted and timed by wrapping those methods of `MySQLdb.connections.Connection`,
and each first SQL keyword is tallied, so the table says how many round trips one item costs
and which statements they are. Client CPU per item comes from `time.process_time`; "driver
wait" is the wall time spent inside those calls (server work, network and commit's fsync).
Round-trip counts do not depend on the machine's load; the times do.

"server CPU" is the time the server's thread for that connection spent on a CPU during the
request (`/proc/<mariadbd>/task/<thread>/schedstat`, found through
`information_schema.PROCESSLIST.TID`): the statements' own work, without the network, the
commit's fsync wait or other processes' turns on the CPU, so it varies far less with the load
than the wall times. Only where the server runs on this machine and its /proc is readable (as
root); elsewhere it is left out.

    python -m benchmarks.mariadb_profile --url mariadb://root@127.0.0.1:3306/wc_prof --items 500
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.claim_throughput import QUEUE, prefill_workclaim
from benchmarks.raw import mariadb as raw


class Tally:
    """Requests sent through MySQLdb, by kind, the wall time spent in them and the server
    threads' CPU time (nanoseconds) during them."""

    def __init__(self) -> None:
        self.requests = 0
        self.wait = 0.0
        self.server = 0
        self.kinds: Counter[str] = Counter()
        self.kind_wait: Counter[str] = Counter()
        self.kind_server: Counter[str] = Counter()


class ServerThreads:
    """The on-CPU time of the server thread serving a MySQLdb connection (schedstat), or None
    where it cannot be read (a remote server, no permission)."""

    def __init__(self, url: str) -> None:
        self._files: dict[int, Any] = {}
        self._admin: Any = raw.connect(url, database=False)
        self._usable = True

    def cpu_ns(self, conn: Any) -> int | None:
        """The server thread's CPU time so far, for `conn` (None when unknown)."""
        if not self._usable:
            return None
        key = conn.thread_id()
        handle = self._files.get(key)
        if handle is None:
            cur = self._admin.cursor()
            cur.execute("SELECT TID FROM information_schema.PROCESSLIST WHERE ID = %s", (key,))
            row = cur.fetchone()
            cur.close()
            try:  # a thread id is a /proc entry of its own; it must be this machine's mariadbd
                if row is None or not os.readlink(f"/proc/{row[0]}/exe").endswith("mariadbd"):
                    raise OSError("not a local mariadbd thread")
                handle = open(f"/proc/{row[0]}/schedstat")  # noqa: SIM115
            except OSError:
                self._usable = False
                return None
            self._files[key] = handle
        handle.seek(0)
        return int(handle.read().split()[0])

    def owns(self, conn: Any) -> bool:
        """Whether `conn` is this object's own lookup connection."""
        return conn is self._admin

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        if self._admin is not None:
            self._admin.close()


@contextmanager
def counting(threads: ServerThreads | None = None) -> Iterator[Tally]:
    """Count every request of every MySQLdb connection while the block runs (and the server
    threads' CPU time during them, given `threads`)."""
    from MySQLdb.connections import Connection

    tally = Tally()
    originals = {name: getattr(Connection, name) for name in ("query", "commit", "rollback")}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(self: Any, *args: Any) -> Any:
            if threads is not None and threads.owns(self):
                return fn(self, *args)  # the lookup's own queries are not counted
            c0 = threads.cpu_ns(self) if threads is not None else None
            t0 = time.perf_counter()
            try:
                return fn(self, *args)
            finally:
                spent = time.perf_counter() - t0
                c1 = threads.cpu_ns(self) if threads is not None and c0 is not None else None
                on_cpu = c1 - c0 if c0 is not None and c1 is not None else 0
                tally.wait += spent
                tally.requests += 1
                if name == "query":
                    text = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
                    words = [w for w in text.replace(";", " ; ").split() if w]
                    statements = " ".join(words).split(" ; ")
                    kind = " + ".join(s.split()[0].upper() for s in statements if s)
                else:
                    kind = name.upper()
                tally.kinds[kind] += 1
                tally.kind_wait[kind] += spent
                tally.server += on_cpu
                tally.kind_server[kind] += on_cpu

        return counted

    for name, fn in originals.items():
        setattr(Connection, name, wrap(name, fn))
    try:
        yield tally
    finally:
        for name, fn in originals.items():
            setattr(Connection, name, fn)


def _drain_workclaim(url: str, batch: int, fused: bool, threads: ServerThreads) -> int:
    from workclaim import Queue

    done = 0
    with Queue(url) as q:
        q.stats(QUEUE)  # connected, schema checked: outside the count
        with counting(threads) as tally:
            finished: list[Any] = []
            cpu0, t0 = time.process_time(), time.perf_counter()
            while True:
                if fused:
                    _lost, leases = q.complete_and_claim(
                        finished, QUEUE, worker="prof", lease_seconds=300, limit=batch
                    )
                    finished = list(leases)
                else:
                    leases = q.claim(QUEUE, worker="prof", lease_seconds=300, limit=batch)
                    for lease in leases:
                        q.complete(lease)
                if not leases:
                    break
                done += len(leases)
            _report(
                "workclaim fused" if fused else "workclaim",
                batch,
                done,
                tally,
                time.process_time() - cpu0,
                time.perf_counter() - t0,
            )
    return done


def _drain_raw(url: str, batch: int, threads: ServerThreads) -> int:
    worker = raw.open_worker(url)
    done = 0
    try:
        with counting(threads) as tally:
            cpu0, t0 = time.process_time(), time.perf_counter()
            while True:
                rows = worker.claim(batch)
                if not rows:
                    break
                for item_id, token in rows:
                    worker.complete(item_id, token)
                done += len(rows)
            _report("raw", batch, done, tally, time.process_time() - cpu0, time.perf_counter() - t0)
    finally:
        worker.close()
    return done


def _report(kind: str, batch: int, items: int, tally: Tally, cpu: float, wall: float) -> None:
    per = max(1, items)
    kinds = ", ".join(
        f"{k} x{v / per:.2f} ({tally.kind_wait[k] / v * 1e6:.0f} us each"
        + (f", server CPU {tally.kind_server[k] / v / 1e3:.0f} us" if tally.server else "")
        + ")"
        for k, v in tally.kinds.most_common()
    )
    server = f", server CPU {tally.server / per / 1e3:5.0f} us/item" if tally.server else ""
    print(
        f"{kind:<16} batch {batch:>3}: {items / wall:7.0f} items/s, {tally.requests / per:5.2f} "
        f"round trips/item, client CPU {cpu / per * 1e6:5.0f} us/item, driver wait "
        f"{tally.wait / per * 1e6:6.0f} us/item{server} | {kinds}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="mariadb://root@127.0.0.1:3306/wc_prof")
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--batches", default="1,100")
    parser.add_argument(
        "--history", choices=("on", "off"), default="on", help="workclaim's attempt history"
    )
    args = parser.parse_args(argv)
    threads = ServerThreads(args.url)
    try:
        for batch in (int(b) for b in args.batches.split(",")):
            raw.prefill(args.url, args.items)
            _drain_raw(args.url, batch, threads)
            for fused in (False, True):
                prefill_workclaim(args.url, args.items, 0, args.history == "on")
                _drain_workclaim(args.url, batch, fused, threads)
    finally:
        threads.close()
    raw.drop(args.url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
