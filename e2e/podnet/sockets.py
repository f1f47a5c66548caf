"""Listening sockets inside the run's network namespace, opened from a process that stays outside.

The pod servers must listen inside the namespace (that is where the pod range is local) while
their process watches the API server, which listens on 127.0.0.1 of the root namespace. A socket
belongs to the namespace its creating thread was in when it was created, and keeps it whatever
thread uses it later. So one dedicated thread enters the namespace (``setns(2)``; Python 3.11's
``os`` has no ``setns``) and only ever creates sockets; the event loop, in the root namespace,
serves on them.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
from concurrent.futures import BrokenExecutor, ThreadPoolExecutor
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
#: Connections waiting to be accepted per pod port; a burst of new connections from a gateway
#: must not be refused.
BACKLOG = 512


class NamespaceError(OSError):
    """The network namespace could not be entered."""


def _enter(netns: str) -> None:
    path = NETNS_DIR / netns
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NamespaceError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def _nothing() -> None:
    pass


def _listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class NamespaceSockets:
    """Opens listening sockets in network namespace ``netns`` (a name under /run/netns)."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        # The thread enters the namespace once, before its first task, and never leaves it.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netns-{netns}",
                                          initializer=_enter, initargs=(netns,))

    async def enter(self) -> None:
        """Enter the namespace now, so a missing one is reported at start, not at the first Pod."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, _nothing)
        except BrokenExecutor as exc:
            # The initializer's exception is logged by the executor, not chained; name the namespace.
            raise NamespaceError(f"cannot enter network namespace {self.netns} ({NETNS_DIR / self.netns})") from exc

    async def listen(self, address: str, port: int) -> socket.socket:
        return await asyncio.get_running_loop().run_in_executor(self._thread, _listen, address, port)

    def close(self) -> None:
        self._thread.shutdown(wait=False)
