"""One pub/sub subscriber thread per backend, fanning "work may be claimable" out to waiters.

Scripts that make work claimable PUBLISH once on the prefix's wakeup channel; this thread turns
each message into `Wakeup.notify()`. It holds its own connection (never one of the pool's), reads
only when the socket has data, so a quiet channel never hits the socket timeout, and after any
error it notifies (waiters look again and see the error themselves) and reconnects with a
bounded backoff. It also notifies right after each (re)subscription, so that a signal sent
before it was listening is not lost.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import redis

from workclaim.backends.wakeup import Wakeup

_POLL_SECONDS = 0.1  # how long one read waits, i.e. how soon stop() is noticed
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0


class Listener:
    """A daemon thread subscribed to one channel; `stop()` ends it."""

    def __init__(
        self,
        connection_kwargs: dict[str, Any],
        connection_class: type[redis.Connection],
        channel: str,
        wakeup: Wakeup,
    ) -> None:
        self._pool = redis.ConnectionPool(
            connection_class=connection_class, max_connections=2, **connection_kwargs
        )
        self._client = redis.Redis(connection_pool=self._pool)
        self._channel = channel
        self._wakeup = wakeup
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="workclaim-redis-listener", daemon=True
        )

    def start(self) -> None:
        """Start listening (once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=_POLL_SECONDS * 8)
        self._client.close()
        self._pool.disconnect()

    def _run(self) -> None:
        backoff = _BACKOFF_MIN
        while not self._stop.is_set():
            pubsub = self._client.pubsub()
            try:
                pubsub.subscribe(self._channel)
                subscribed = False
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe" and not subscribed:
                        subscribed = True
                        backoff = _BACKOFF_MIN
                        self._wakeup.notify()  # anything published before now: look again
                    elif message["type"] == "message":
                        self._wakeup.notify()
            except (redis.RedisError, OSError, ValueError):
                self._wakeup.notify()  # waiters look again and meet the error themselves
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
