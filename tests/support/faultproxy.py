"""A small TCP fault proxy on 127.0.0.1 for tests: put it between a client and a server, then flip
its mode while traffic flows.

Modes: `pass`; `latency:<ms>` (each chunk delayed); `blackhole` (bytes held, sockets kept open:
no RST, no FIN, so only an application deadline can notice); `refuse` (new connections get an RST);
`reset_all()` tears every open connection down with an RST (SO_LINGER 0). It runs on an event loop
of its own thread, so a synchronous test drives it with plain method calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from types import TracebackType
from typing import Self

_CHUNK = 65_536
_HOLD_POLL = 0.05


class FaultProxy:
    """Forwards 127.0.0.1:`port` to `target_host:target_port`, injecting the current mode's fault.

    >>> with FaultProxy("127.0.0.1", 5432) as proxy:
    ...     url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
    ...     proxy.set_mode("blackhole")
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.mode = "pass"
        self.port = 0
        self.connections = 0  # accepted so far, for reports
        self.resets = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="faultproxy", daemon=True
        )

    # -- control, from any thread ----------------------------------------------------------
    def start(self) -> Self:
        """Listen on a free loopback port (see `port`) and start forwarding."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(10)
        return self

    def set_mode(self, mode: str) -> None:
        """Switch to `pass`, `latency:<ms>`, `blackhole` or `refuse` (open connections too)."""
        if mode not in ("pass", "blackhole", "refuse") and not _is_latency(mode):
            raise ValueError(f"unknown fault proxy mode {mode!r}")
        self.mode = mode

    def reset_all(self) -> int:
        """Send an RST on every open connection (both sides); returns how many sockets it reset."""
        future = asyncio.run_coroutine_threadsafe(self._reset_all(), self._loop)
        return future.result(10)

    def close(self) -> None:
        """Reset every connection, stop listening and stop the loop. Idempotent."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the loop's side -------------------------------------------------------------------------
    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "refuse":
            _rst(client_w)
            return
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _rst(client_w)
            return
        self._writers.update((client_w, server_w))
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w),
                self._pipe(server_r, client_w),
                return_exceptions=True,
            )
        finally:
            self._writers.difference_update((client_w, server_w))
            for w in (client_w, server_w):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                while self.mode == "blackhole":
                    await asyncio.sleep(_HOLD_POLL)  # hold the bytes, keep the socket open
                if _is_latency(self.mode):
                    await asyncio.sleep(int(self.mode.split(":", 1)[1]) / 1000)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not writer.is_closing():
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write_eof()

    async def _reset_all(self) -> int:
        writers = list(self._writers)
        for w in writers:
            _rst(w)
        self.resets += len(writers)
        return len(writers)

    async def _shutdown(self) -> None:
        await self._reset_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _is_latency(mode: str) -> bool:
    prefix, _, ms = mode.partition(":")
    return prefix == "latency" and ms.isdigit()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN: SO_LINGER on with a zero timeout, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
