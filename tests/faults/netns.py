"""A network namespace joined to this one by a veth pair, made with `ip` (root needed): the
workers on its side reach the store only through the veth, so a partition is the veth's link set
down (TCP then sees silence, not resets, as with a cut cable), and healing sets it up again.

Processes join the namespace at birth: `inside()` moves the calling thread into it while it
spawns them (a child starts in its parent thread's namespace) and moves it back afterwards. The
addresses live on the veth only (a random /30 in 10.0.0.0/8's top end), removed with the pair.
"""

from __future__ import annotations

import ctypes
import os
import random
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.missing import unavailable

CLONE_NEWNET = 0x40000000


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")


class Partitionable:
    """`host_ip` (this side of the veth) and a namespace whose side is `ns_ip`."""

    def __init__(self) -> None:
        tag = secrets.token_hex(4)
        self.ns = f"wcf{tag}"
        self.host_if, self.ns_if = f"wcfh{tag}", f"wcfn{tag}"
        a, b, c = random.randint(240, 254), random.randint(0, 255), random.randrange(0, 256, 4)
        self.host_ip, self.ns_ip = f"10.{a}.{b}.{c + 1}", f"10.{a}.{b}.{c + 2}"
        made = _ip("netns", "add", self.ns)
        if made.returncode != 0:
            unavailable(f"cannot create a network namespace (needs root): {made.stderr.strip()}")
        try:
            for args in (
                ("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if),
                ("link", "set", self.ns_if, "netns", self.ns),
                ("addr", "add", f"{self.host_ip}/30", "dev", self.host_if),
                ("link", "set", self.host_if, "up"),
                ("-n", self.ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if),
                ("-n", self.ns, "link", "set", self.ns_if, "up"),
                ("-n", self.ns, "link", "set", "lo", "up"),
            ):
                done = _ip(*args)
                if done.returncode != 0:
                    raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
        except BaseException:
            self.close()
            raise

    def cut(self) -> None:
        """The partition: the namespace's side hears nothing from here, and vice versa."""
        _ip("link", "set", self.host_if, "down").check_returncode()

    def heal(self) -> None:
        _ip("link", "set", self.host_if, "up").check_returncode()

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Processes started in this block live in the namespace."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def close(self) -> None:
        """Remove the pair (deleting one end deletes both) and the namespace."""
        _ip("link", "del", self.host_if)
        _ip("netns", "del", self.ns)
