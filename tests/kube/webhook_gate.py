"""A webhook gate on 127.0.0.1 for whole-release tests: answers a chosen status, records each call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Gate:
    """A webhook endpoint on 127.0.0.1 that answers ``status`` and records what it was sent."""

    status: int = 403
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(json.loads(await request.read()))
        return web.Response(status=self.status, text="approved" if self.status < 300 else "not yet")


@asynccontextmanager
async def serve_gate() -> AsyncIterator[Gate]:
    found = Gate()
    app = web.Application()
    app.router.add_post("/approve", found.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    found.url = f"http://{host}:{port}/approve"
    try:
        yield found
    finally:
        await runner.cleanup()
