"""A real HTTP server on 127.0.0.1 playing scripted webhook answers and recording requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = ""
    delay: float = 0.0  # seconds to wait before answering (timeouts, concurrency)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    method: str
    body: Any
    content_type: str


class HookServer:
    """Answers each path with its script in order, repeating the last reply once it runs out."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.base = ""
        self.in_flight = 0
        self.max_in_flight = 0
        self._scripts: dict[str, list[Reply]] = {}

    def script(self, path: str, *replies: Reply) -> str:
        self._scripts[path] = list(replies)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.received.append(
            Received(request.path, request.method, json.loads(raw) if raw else None, request.content_type)
        )
        script = self._scripts.get(request.path) or [Reply()]
        reply = script.pop(0) if len(script) > 1 else script[0]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
        finally:
            self.in_flight -= 1
        return web.Response(status=reply.status, text=reply.body, headers=reply.headers)


@pytest.fixture
async def hook_server() -> AsyncIterator[HookServer]:
    server = HookServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    # Short shutdown so a test that leaves a slow handler running does not stall teardown.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base = f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
