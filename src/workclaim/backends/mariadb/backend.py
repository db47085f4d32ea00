"""The MariaDB backend: the contract on MariaDB 10.6+ (InnoDB), for teams that run it already.

This module holds the verbs; the sessions, their URL options, deadlines and the transaction
runners are in connection.py, driver errors are translated in errors.py, rows become values in
backends/_rows.py (shared with SQLite: both keep times as integer microseconds), the schema is
in schema.py (and migrations/), the wake-up poller in listener.py, flow control in flow.py and
schedules in schedules.py.

The attempt history is written by a trigger (migrations/0001_initial.sql) fired by the
`event_seq` column that every state-changing statement bumps, so the event is part of the very
statement that makes the change. A fenced write (heartbeat, complete, release, fail) is therefore
one autocommit statement, plus a read of the session variable it set, in one round trip.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import MySQLdb
from MySQLdb.connections import Connection as MySQLConnection

from workclaim._time import from_micros, seconds_to_micros, to_micros
from workclaim.backends import _rows as rows
from workclaim.backends import _verbs as verbs
from workclaim.backends._queryfile import load_queries
from workclaim.backends.base import Backend, NewItem, NewSchedule, TransactionalEnqueue
from workclaim.backends.mariadb import flow, schema
from workclaim.backends.mariadb import schedules as sched
from workclaim.backends.mariadb.connection import CLOCK_SQL, Connections, Cursor, cursor, session
from workclaim.backends.mariadb.errors import code_of, translate
from workclaim.backends.mariadb.listener import Listener, bump
from workclaim.backends.wakeup import Wakeup
from workclaim.config import Settings
from workclaim.errors import InvalidState, ItemNotFound, LeaseLost, ValidationError
from workclaim.models import (
    GroupLeases,
    HistoryEvent,
    Item,
    Lease,
    QueuePolicy,
    QueueStats,
    Schedule,
    Status,
)

_NOW = f"COALESCE(%(now)s, {CLOCK_SQL})"
Q = {
    name: sql.replace("WC_NOW", _NOW)
    for name, sql in load_queries(schema.PACKAGE, "queries.sql").items()
}
REAP_LIMIT = 100
NO_LIMIT = 2**62  # purge's LIMIT when none is given
# An enqueue's items go in multi-row INSERTs of about this many bytes at most (max_allowed_packet
# is 16 MiB by default; a payload may be up to max_payload_bytes, 1 MiB by default).
STATEMENT_BYTES = 4 * 1024 * 1024
_DUPLICATE_KEY = 1062


class MariadbBackend(Connections):
    """Storage in one MariaDB database; see connection.py for the URL options."""

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self._wakeup = Wakeup(on_first_waiter=self._start_listener)
        self._listener: Listener | None = None

    # -- schema ----------------------------------------------------------------------------
    def migrate(self) -> None:
        self._read(schema.migrate)

    def verify_schema(self) -> None:
        schema.verify(self._read(schema.version), self.target.database)

    # -- time ------------------------------------------------------------------------------
    def store_now(self) -> datetime:
        return from_micros(self._now(None))

    # -- producing -------------------------------------------------------------------------
    def enqueue(
        self, queue: str, items: Sequence[NewItem], *, now: datetime | None = None
    ) -> list[int]:
        ids = self._write(
            lambda cur, now_us: insert_items(cur, queue, items, now_us), now, retry_lost=False
        )
        self._wakeup.notify()
        return ids

    def enqueue_in_transaction(
        self,
        connection: Any,
        queue: str,
        items: Sequence[NewItem],
        *,
        now: datetime | None = None,
    ) -> list[int]:
        """Insert the items through the caller's MySQLdb connection (Django's MySQL backend
        uses mysqlclient) and leave the commit to the caller: the items exist exactly when the
        caller's transaction commits (other processes' pollers see them then). On an
        autocommit connection the batch is one transaction of its own."""
        if not isinstance(connection, MySQLConnection):
            raise ValidationError(
                "connection must be a MySQLdb (mysqlclient) connection to the queue's database, "
                f"got {type(connection).__name__}"
            )
        conn = session(connection)
        if not str(conn.character_set_name()).startswith("utf8mb4"):
            raise ValidationError(
                "the connection's character set must be utf8mb4 (payloads are any Unicode), "
                f"got {conn.character_set_name()}"
            )
        try:
            autocommit = bool(conn.get_autocommit())
            cur = cursor(conn)
            try:
                if autocommit:
                    cur.execute("START TRANSACTION")
                try:
                    now_us = to_micros(now) if now is not None else _clock(cur)
                    ids = insert_items(cur, queue, items, now_us)
                    if autocommit:
                        conn.commit()
                except BaseException:
                    if autocommit:
                        conn.rollback()
                    raise
            finally:
                cur.close()
        except MySQLdb.MySQLError as exc:
            raise translate(exc) from exc
        self._wakeup.notify()
        return ids

    # -- consuming -------------------------------------------------------------------------
    def claim(
        self,
        queues: Sequence[str],
        *,
        worker: str,
        lease_seconds: float,
        limit: int,
        now: datetime | None = None,
    ) -> list[Lease]:
        names = tuple(dict.fromkeys(queues))
        if len(names) == 1:
            # The hot path: one autocommit CALL is the whole transaction (one round trip).
            args = (names[0], worker, seconds_to_micros(lease_seconds), limit)
            fixed = None if now is None else to_micros(now)
            found = self._read(
                lambda cur: _call(cur, "workclaim_claim", (*args, fixed, REAP_LIMIT))
            )
            if not _managed(found):
                return rows.leases(found, worker, lease_seconds)
        claimed = self._write(
            lambda cur, now_us: self._take(
                cur, names, worker, lease_seconds, limit, now_us, clock=now is None
            ),
            now,
        )
        return rows.leases(claimed, worker, lease_seconds)

    @staticmethod
    def _take(
        cur: Cursor,
        queues: Sequence[str],
        worker: str,
        lease_seconds: float,
        limit: int,
        now_us: int,
        *,
        clock: bool,
    ) -> list[tuple[Any, ...]]:
        """The claim's statements inside its transaction: reap bounded batches of expired
        leases, then lease up to `limit` items (by flow.py when a queue is managed: a policy, a
        pause or groups), tokens from the sequence in claim order. One queue: the procedure
        workclaim_take does it all in one round trip (migrations/0001_initial.sql); several,
        or a managed one: the statements below."""
        names = tuple(dict.fromkeys(queues))  # a name given twice counts once
        lease_us = seconds_to_micros(lease_seconds)
        if len(names) == 1:
            found = _call(
                cur, "workclaim_take", (names[0], worker, lease_us, limit, now_us, REAP_LIMIT)
            )
            if not _managed(found):
                return found
        cur.execute(Q["probe_expired"], {"now": now_us})
        if cur.fetchone()[0]:
            reap = {"now": now_us, "limit": REAP_LIMIT, "queues": names}
            cur.execute(Q["reap_expired_of"], reap)
            cur.execute(Q["reap_expired_any"], reap)
        if flow.any_managed(cur, names):
            return flow.take(cur, names, worker, lease_us, limit, now_us, clock=clock)
        ids = _lock_several(cur, names, limit, now_us)
        if not ids:
            return []
        params = {"ids": ids, "worker": worker, "now": now_us, "lease_us": lease_us}
        cur.execute(Q["claim_update"], params)
        cur.execute(Q["claim_rows"], {"ids": ids})
        return list(cur.fetchall())

    @staticmethod
    def _fence(lease: Lease, now: datetime | None) -> dict[str, Any]:
        """A fenced write's parameters: the lease's, and the caller's time (None: the store's)."""
        params = verbs.fence(lease)
        params["now"] = None if now is None else to_micros(now)
        return params

    def _fenced(self, sql: str, params: dict[str, Any]) -> tuple[int, tuple[Any, ...] | None]:
        """Run a fenced write and the read of the session variables it set, in one round trip:
        (rows it matched, those variables)."""

        def body(cur: Cursor) -> tuple[int, tuple[Any, ...] | None]:
            matched = int(cur.execute(sql, params))
            out: tuple[Any, ...] | None = None
            while cur.nextset():
                out = cur.fetchone()
            return matched, out

        return self._read(body)

    def _ended(self, lease: Lease, op: str) -> str:
        """After a fenced write changed nothing: the stored outcome if this is a repeat of the
        call that ended this very lease, else `LeaseLost`."""

        def look(cur: Cursor) -> tuple[Any, ...] | None:
            cur.execute(Q["lease_end"], {"id": lease.id})
            row: tuple[Any, ...] | None = cur.fetchone()
            return row

        return verbs.ended(self._read(look), lease, op)

    def heartbeat(
        self, lease: Lease, *, extend_seconds: float | None, now: datetime | None = None
    ) -> Lease:
        params = self._fence(lease, now)
        params["extend_us"] = verbs.micros_or_none(extend_seconds)
        matched, out = self._fenced(Q["heartbeat"], params)
        if not matched or out is None:
            raise LeaseLost(lease.id, lease.token)
        return replace(lease, expires_at=from_micros(int(out[0])))

    def complete(self, lease: Lease, *, result: str | None, now: datetime | None = None) -> None:
        params = self._fence(lease, now)
        params["result"] = result
        matched, out = self._fenced(Q["complete"], params)
        if not matched:
            self._ended(lease, "complete")
        elif out is not None and out[0]:  # a managed queue: the completion freed a slot
            self._wakeup.notify()

    def release(self, lease: Lease, *, delay_seconds: float, now: datetime | None = None) -> None:
        params = self._fence(lease, now)
        params["delay_us"] = seconds_to_micros(delay_seconds)
        matched, _ = self._fenced(Q["release"], params)
        if not matched:
            self._ended(lease, "release")
            return
        self._wakeup.notify()

    def fail(
        self,
        lease: Lease,
        *,
        error: str,
        retry_delay: float | None,
        now: datetime | None = None,
    ) -> Status:
        params = self._fence(lease, now)
        params["error"] = error
        params["retry_us"] = verbs.micros_or_none(retry_delay)
        matched, out = self._fenced(Q["fail"], params)
        if not matched or out is None:
            return Status(self._ended(lease, "fail"))
        status = Status(_text(out[0]))
        if status is Status.QUEUED or out[1]:  # an item to claim, or a freed slot
            self._wakeup.notify()
        return status

    def complete_and_claim(
        self,
        done: Sequence[tuple[Lease, str | None]],
        queues: Sequence[str],
        *,
        worker: str,
        lease_seconds: float,
        limit: int,
        now: datetime | None = None,
    ) -> tuple[list[bool], list[Lease]]:
        names = tuple(dict.fromkeys(queues))
        if len(names) == 1:
            # The hot path: one autocommit CALL is the whole turn (one round trip).
            done_json = json.dumps(
                [[lease.id, lease.token, lease.worker, result] for lease, result in done],
                ensure_ascii=False,
            )
            args = (done_json, names[0], worker, seconds_to_micros(lease_seconds), limit)
            fixed = None if now is None else to_micros(now)
            turn = self._read(lambda cur: _call_fused(cur, (*args, fixed, REAP_LIMIT)))
            if turn is not None:
                flags_text, freed_flag, taken = turn
                if freed_flag:
                    self._wakeup.notify()
                flags = [flag == "1" for flag in flags_text]
                return flags, rows.leases(taken, worker, lease_seconds)
        complete, lease_end = Q["complete"], Q["lease_end"]
        freed = False  # whether a completion freed a slot of a managed queue

        def run(cur: Cursor, now_us: int) -> tuple[list[bool], list[tuple[Any, ...]]]:
            nonlocal freed
            flags: list[bool] = []
            for lease, result in done:
                params = verbs.fence(lease)
                params["now"], params["result"] = now_us, result
                matched = cur.execute(complete, params)
                cur.nextset()
                flag_row = cur.fetchone()
                if matched:
                    flags.append(True)
                    freed = freed or bool(flag_row and flag_row[0])
                    continue
                cur.execute(lease_end, {"id": lease.id})
                row = cur.fetchone()
                flags.append(verbs.is_repeat(row, lease, "complete"))
            if limit <= 0:
                return flags, []
            return flags, self._take(
                cur, queues, worker, lease_seconds, limit, now_us, clock=now is None
            )

        flags, claimed = self._write(run, now)
        if freed:
            self._wakeup.notify()
        return flags, rows.leases(claimed, worker, lease_seconds)

    # -- inspection and housekeeping -------------------------------------------------------
    def get(self, item_id: int) -> Item | None:
        def look(cur: Cursor) -> tuple[Any, ...] | None:
            cur.execute(Q["get_item"], {"id": item_id})
            row: tuple[Any, ...] | None = cur.fetchone()
            return row

        row = self._read(look)
        return None if row is None else rows.item(_decoded(row))

    def history(
        self, item_id: int, *, limit: int, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent] | None:
        sql = Q["history_newest" if newest_first else "history"]
        params = {"id": item_id, "limit": limit, "start": start}

        def look(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(sql, params)
            return list(cur.fetchall())

        found = self._read(look)
        if not found:
            return None
        return [rows.event(_decoded(row)) for row in found if row[1] is not None]

    def items(
        self, queue: str, status: Status, *, limit: int, after_id: int | None = None
    ) -> list[Item]:
        params = {
            "queue": queue,
            "status": str(status),
            "limit": limit,
            "after": 0 if after_id is None else after_id,
        }
        sql = Q["items_done" if status is Status.DONE else "items_live"]

        def look(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(sql, params)
            return list(cur.fetchall())

        return [rows.item(_decoded(row)) for row in self._read(look)]

    def queues(self) -> list[str]:
        def look(cur: Cursor) -> list[str]:
            cur.execute(Q["queues"])
            return [_text(row[0]) for row in cur.fetchall()]

        return self._read(look)

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        def look(cur: Cursor) -> tuple[Any, ...]:
            now_us = to_micros(now) if now is not None else _clock(cur)
            cur.execute(Q["stats"], {"queue": queue, "now": now_us})
            return tuple(cur.fetchone())

        return verbs.queue_stats(queue, self._read(look))

    @staticmethod
    def _state_error(cur: Cursor, item_id: int, verb: str) -> InvalidState | ItemNotFound:
        cur.execute(Q["status_of"], {"id": item_id})
        row = cur.fetchone()
        if row is None:
            return ItemNotFound(item_id)
        return InvalidState(f"cannot {verb} item {item_id}: it is {_text(row[0])}")

    def cancel(self, item_id: int, *, now: datetime | None = None) -> None:
        def run(cur: Cursor, now_us: int) -> None:
            if not cur.execute(Q["cancel"], {"id": item_id, "now": now_us}):
                raise self._state_error(cur, item_id, "cancel")

        self._write(run, now)

    def requeue(
        self, item_id: int, *, max_attempts: int | None, now: datetime | None = None
    ) -> None:
        def run(cur: Cursor, now_us: int) -> None:
            params = {"id": item_id, "now": now_us, "max_attempts": max_attempts}
            try:
                changed = cur.execute(Q["requeue"], params)
            except MySQLdb.IntegrityError as exc:
                if code_of(exc) != _DUPLICATE_KEY:
                    raise
                raise InvalidState(
                    f"cannot requeue item {item_id}: its dedupe key is held by another live item"
                ) from exc
            if not changed:
                raise self._state_error(cur, item_id, "requeue")
            flow.activate_item(cur, item_id)

        self._write(run, now)
        self._wakeup.notify()

    def purge(
        self,
        queue: str | None,
        *,
        older_than_seconds: float,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> int:
        def run(cur: Cursor, now_us: int) -> int:
            params = verbs.purge_params(queue, older_than_seconds, limit, now_us, no_limit=NO_LIMIT)
            return int(cur.execute(Q["purge"], params))

        return self._write(run, now)

    def next_due(self, queues: Sequence[str], *, now: datetime | None = None) -> datetime | None:
        """See `Backend.next_due`: now while one of the queues' leases has expired unreaped."""
        names = tuple(dict.fromkeys(queues))

        def look(cur: Cursor) -> int | None:
            now_us = to_micros(now) if now is not None else _clock(cur)
            cur.execute(Q["next_due"], {"queues": names, "now": now_us})
            expired, run_at, expiry = cur.fetchone()
            if expired:
                return now_us
            return verbs.earliest(run_at, expiry, flow.rate_due(cur, names, now_us))

        due_us = self._read(look)
        return None if due_us is None else from_micros(due_us)

    # -- wake-ups --------------------------------------------------------------------------
    def wakeup(self) -> Wakeup:
        return self._wakeup

    def _start_listener(self) -> None:
        """Called by the first waiter (under the Wakeup's lock): other processes' commits are
        seen by the poller (listener.py)."""
        self._listener = Listener(self._connect, self._wakeup)
        self._listener.start()

    # -- flow control (flow.py) -------------------------------------------------------------
    def policy(self, queue: str) -> QueuePolicy:
        return self._read(lambda cur: flow.read_policy(cur, queue))

    def set_policy(self, policy: QueuePolicy) -> QueuePolicy:
        def run(cur: Cursor, _now_us: int) -> QueuePolicy:
            # A raised limit may free slots: other processes' claims look again. The signal
            # first: a claim that reaped holds a signal row when it waits for the policy row.
            bump(cur)
            return flow.set_policy(cur, policy)

        stored = self._write(run)
        self._wakeup.notify()
        return stored

    def set_paused(self, queue: str, paused: bool) -> QueuePolicy:
        def run(cur: Cursor, _now_us: int) -> QueuePolicy:
            if not paused:
                bump(cur)  # resume wakes other processes' claims too (first: see set_policy)
            return flow.set_paused(cur, queue, paused)

        stored = self._write(run)
        if not paused:
            self._wakeup.notify()
        return stored

    def live_leases_by_group(
        self, queue: str, *, limit: int, now: datetime | None = None
    ) -> list[GroupLeases]:
        def look(cur: Cursor) -> list[tuple[str, int]]:
            now_us = to_micros(now) if now is not None else _clock(cur)
            return flow.live_by_group(cur, queue, limit, now_us)

        return [GroupLeases(grp or None, int(n)) for grp, n in self._read(look)]

    # -- schedules (schedules.py) -----------------------------------------------------------
    def set_schedule(self, schedule: NewSchedule, *, now: datetime | None = None) -> Schedule:
        stored = self._write(lambda cur, now_us: sched.put(cur, schedule, now_us), now)
        self._wakeup.notify()  # a scheduler's next slot may have moved
        return stored

    def remove_schedule(self, name: str) -> bool:
        existed = self._write(lambda cur, _now_us: sched.remove(cur, name))
        self._wakeup.notify()
        return existed

    def schedules(self) -> list[Schedule]:
        return self._read(sched.every)

    def get_schedule(self, name: str) -> Schedule | None:
        return self._read(lambda cur: sched.get(cur, name))

    def fire_schedule(
        self,
        name: str,
        *,
        version: int,
        slot: datetime,
        item: NewItem,
        now: datetime | None = None,
    ) -> int | None:
        slot_us = to_micros(slot)
        item_id = self._write(
            lambda cur, now_us: sched.fire(cur, insert_items, name, version, slot_us, item, now_us),
            now,
            retry_lost=False,
        )
        if item_id is not None:
            self._wakeup.notify()
        return item_id

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.stop()
        self._close_connections()
        self._wakeup.notify()


def insert_items(cur: Cursor, queue: str, items: Sequence[NewItem], now_us: int) -> list[int]:
    """`enqueue`'s statements inside its transaction (also a schedule's slot, schedules.py): a
    live item holding an item's dedupe key is returned instead of a new one; the group and the
    queue's flow-control bookkeeping are kept as for every item."""
    ids: list[int] = []
    if any(item.group is not None for item in items):
        flow.set_grouped(cur, queue)
    managed = flow.is_managed(cur, queue)
    row_sql, flag = Q["insert_row"], 1 if managed else 0
    batch: list[Any] = []
    size = 0
    for index, item in enumerate(items):
        batch.extend(
            (
                queue,
                item.payload,
                item.priority,
                verbs.run_at_us(item, now_us),
                item.max_attempts,
                item.dedupe_key,
                1 if item.history else 0,
                now_us,
                now_us,
                item.group or "",
                flag,
            )
        )
        size += 4 * len(item.payload) + 256  # utf8mb4 and escaping: at most 4 bytes a char
        if size >= STATEMENT_BYTES or index == len(items) - 1:
            rows_in = len(batch) // 11
            sql = Q["insert_items"].replace("ROWS", ", ".join([row_sql] * rows_in))
            cur.execute(sql, batch)
            ids.extend(int(row[0]) for row in cur.fetchall())
            batch, size = [], 0
    if managed:
        flow.activate(cur, queue, [item.group or "" for item in items])
    return ids


def _lock_several(cur: Cursor, queues: Sequence[str], limit: int, now_us: int) -> tuple[int, ...]:
    """Lock the ids of up to `limit` claimable items of `queues` (a plain claim of several), about
    the best in claim order, and no row more: a row locked and not taken would stay locked to
    the commit, and another claim would skip an item that nobody takes.

    Each round reads, without a lock, how many of the best `wanted` items each open queue holds
    (claim_peek), then locks that many of each (claim_select, skipping rows other claims hold).
    A queue that yields fewer than wanted has no unlocked claimable row left: it is closed, and
    the next round asks the others for the rest. So a round either fills the claim, closes a
    queue, or finds nothing new; there are at most a few rounds (one when nothing contends)."""
    taken: list[int] = []
    open_queues = list(queues)
    while open_queues and len(taken) < limit:
        wanted = limit - len(taken)
        held = tuple(taken) or (0,)  # ids start at 1: (0,) excludes nothing
        parts = " UNION ALL ".join([Q["claim_peek"]] * len(open_queues))
        args: list[Any] = []
        for part, name in enumerate(open_queues):
            args.extend((part, name, now_us, held, wanted))
        cur.execute(f"{parts} {Q['claim_peek_order']}", (*args, wanted))
        want = Counter(int(row[0]) for row in cur.fetchall())
        if not want:
            break
        closed: set[int] = set()
        for part, count in want.items():
            params = {"queue": open_queues[part], "now": now_us, "taken": held, "limit": count}
            cur.execute(Q["claim_select"], params)
            got = [int(row[0]) for row in cur.fetchall()]
            taken.extend(got)
            if len(got) < count:
                closed.add(part)
        open_queues = [name for part, name in enumerate(open_queues) if part not in closed]
    return tuple(taken)


def _call(cur: Cursor, procedure: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """CALL a claim procedure: its one result set, every further result drained (an error in
    a later one, as a failed COMMIT, raises here, so no lease of a rolled back claim escapes)."""
    marks = ", ".join(["%s"] * len(args))
    cur.execute(f"CALL {procedure}({marks})", args)
    found = list(cur.fetchall())
    while cur.nextset():
        pass
    return found


def _call_fused(
    cur: Cursor, args: tuple[Any, ...]
) -> tuple[str, int, list[tuple[Any, ...]]] | None:
    """CALL workclaim_complete_and_claim: (flags as '0'/'1' text, whether a slot was freed, the
    leases); None when the queue is managed (nothing was done). Every result is drained."""
    marks = ", ".join(["%s"] * len(args))
    cur.execute(f"CALL workclaim_complete_and_claim({marks})", args)
    flags_text, freed = cur.fetchone()
    taken: list[tuple[Any, ...]] = []
    if flags_text is None:
        while cur.nextset():
            pass
        return None
    if cur.nextset() and cur.description is not None:
        taken = list(cur.fetchall())
    while cur.nextset():
        pass
    return _text(flags_text), int(freed), taken


def _managed(found: list[tuple[Any, ...]]) -> bool:
    """Whether a claim procedure answered "managed queue" (one row of NULLs, nothing taken)."""
    return bool(found) and found[0][0] is None


def _clock(cur: Cursor) -> int:
    cur.execute(Q["clock"], {"now": None})
    return int(cur.fetchone()[0])


def _text(value: Any) -> str:
    """A text column's value as str (MySQLdb gives bytes for some expressions' results)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _decoded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row with any bytes (from expressions and ENUMs) as str."""
    return tuple(v.decode() if isinstance(v, bytes) else v for v in row)


def _conforms(backend: MariadbBackend) -> tuple[Backend, TransactionalEnqueue]:
    """mypy checks here that MariadbBackend meets the Backend protocol and enqueues in a
    caller's transaction."""
    return backend, backend
