"""The SQLite store's clock: this host's clock, never behind the latest time a write used.

SQLite has no server, so "the store's clock" is the clock of each process that writes. When one
process's clock is stepped back (an NTP step, a VM resumed, libfaketime in the fault suite), the
leases it grants would end minutes before other processes think they started, and those processes
would hand the items out again while their holders still work. So every write reads its time as
`max(host clock, high-water mark)` and moves the mark, which lives in `<database>-wcclock`, an
8-byte file mapped into each process: a write reads and moves it under SQLite's write lock (held
by then in `BEGIN IMMEDIATE` and in an autocommit statement's first `workclaim_now()`), so writers
never see time go backwards. A mapped read and store cost nanoseconds, nothing a claim notices.

A step forward is the store's clock moving forward: every lease live then is expired at once, and
the mark then holds the store's time still until the host clock catches up (no lease expires in
that while). The file is not fsynced; after a host crash the mark may be lost with the step. The
mapping lives as long as the backend object (unmapping it under a thread mid-write would crash).
"""

from __future__ import annotations

import mmap
import os
import struct

_MARK = struct.Struct("<q")


class StoreClock:
    """`now(host_us)`: the write's time in microseconds, moving the mark; `peek` does not."""

    def __init__(self, db_path: str | None) -> None:
        self._buf: mmap.mmap | bytearray
        if db_path is None:  # one in-memory database: one process, a plain buffer
            self._buf = bytearray(_MARK.size)
            return
        fd = os.open(db_path + "-wcclock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < _MARK.size:
                os.ftruncate(fd, _MARK.size)  # zeros: no mark yet (never shrinks a mark)
            self._buf = mmap.mmap(fd, _MARK.size)
        finally:
            os.close(fd)  # the mapping keeps the file

    def now(self, host_us: int) -> int:
        """`host_us`, or the mark when that is later; call it under the database's write lock."""
        mark: int = _MARK.unpack_from(self._buf)[0]
        if host_us > mark:
            _MARK.pack_into(self._buf, 0, host_us)
            return host_us
        return mark

    def peek(self, host_us: int) -> int:
        """The time a read uses: the same rule, the mark left alone."""
        mark: int = _MARK.unpack_from(self._buf)[0]
        return max(host_us, mark)
