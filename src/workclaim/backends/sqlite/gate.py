"""Queues this host's writers on an OS file lock, so they wait in the kernel instead of in
SQLite's busy handler.

SQLite's busy handler retries a locked database after sleeps of 1, 2, 5, 10 ... 100 ms, so under
contention a writer can sleep long after the lock was freed, and one unlucky writer can lose many
rounds in a row (seconds of tail latency with 32 processes). A blocking `flock` on a side file
wakes a waiter as soon as the holder lets go. The database's own lock still decides; the gate only
orders this host's writers in front of it. The lock dies with its process, so a crashed writer
never blocks the others; a wait longer than the deadline raises `BackendUnavailable`.
"""

from __future__ import annotations

import fcntl
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from workclaim.errors import BackendUnavailable


class WriterGate:
    """An exclusive `flock` on `<database>-wclock`, one file descriptor per thread (each thread
    needs its own: `flock` belongs to the open file, so threads sharing one would not exclude
    each other). Every descriptor opened is remembered so that `close` can close them all."""

    def __init__(self, db_path: str, timeout: float) -> None:
        self.path = db_path + "-wclock"
        self.timeout = timeout
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._pid = os.getpid()
        self._open: set[int] = set()  # every descriptor this process opened, until closed

    def _fd(self) -> int:
        if os.getpid() != self._pid:  # after a fork: new descriptors, new pool
            self._local = threading.local()
            self._pool = None
            self._pid = os.getpid()
            self._open = set()
        fd: int | None = getattr(self._local, "fd", None)
        if fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._local.fd = fd
            with self._pool_lock:
                self._open.add(fd)
        return fd

    def _waiters(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(64, thread_name_prefix="workclaim-gate")
            return self._pool

    def acquire(self) -> int:
        """Take the gate (waiting at most `timeout`); returns the descriptor to release."""
        fd = self._fd()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        waiting: Future[None] = self._waiters().submit(fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            waiting.result(self.timeout)
            return fd
        except FutureTimeout:
            # Give this descriptor up: whenever the blocked flock returns, unlock and close it.
            self._local.fd = None
            with self._pool_lock:
                self._open.discard(fd)
            waiting.add_done_callback(lambda _: _unlock_and_close(fd))
            raise BackendUnavailable(
                f"another writer held the SQLite database for more than {self.timeout:g} s; "
                "retry later"
            ) from None

    @staticmethod
    def release(fd: int) -> None:
        """Let the next writer in."""
        fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Stop the waiter threads and close every descriptor opened (an int in a thread's
        locals is not closed when the thread ends). Call it when no write is in flight."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
            fds, self._open = self._open, set()
            self._local = threading.local()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for fd in fds:
            os.close(fd)


def _unlock_and_close(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
