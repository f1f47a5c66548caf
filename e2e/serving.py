"""The life of the harness's own server processes (``python -m e2e.mesh``, ``python -m e2e.podnet``):
start, serve until SIGTERM or SIGINT, stop."""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol


class Served(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_signalled(app: Served) -> None:
    """Start ``app``, wait for SIGTERM or SIGINT, and stop it (also when starting failed half-way)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()
