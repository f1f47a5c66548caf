from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from canary.telemetry import ControllerMetrics, serve_http


@asynccontextmanager
async def served(metrics: ControllerMetrics, is_ready: Callable[[], bool]) -> AsyncIterator[str]:
    runner: web.AppRunner = await serve_http(metrics.registry, 0, "127.0.0.1", is_ready=is_ready)
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_metrics_endpoint_serves_the_registry() -> None:
    metrics = ControllerMetrics()
    metrics.set_weight("test", "podinfo", 40)
    async with served(metrics, lambda: True) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            assert 'canary_weight{name="podinfo",namespace="test"} 40.0' in await resp.text()

        metrics.set_weight("test", "podinfo", 60)  # served live, not a snapshot
        async with http.get(f"{base}/metrics") as resp:
            assert 'canary_weight{name="podinfo",namespace="test"} 60.0' in await resp.text()

        async with http.get(f"{base}/metrics", headers={"Accept": "application/openmetrics-text"}) as resp:
            assert resp.content_type == "application/openmetrics-text"
            assert (await resp.text()).endswith("# EOF\n")


async def test_healthz_and_readyz() -> None:
    ready = False
    async with served(ControllerMetrics(), lambda: ready) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 503

        ready = True
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200


async def test_readyz_is_503_when_the_check_raises() -> None:
    def broken() -> bool:
        raise RuntimeError("cache not built")

    async with served(ControllerMetrics(), broken) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 503


async def test_unknown_path_is_404() -> None:
    async with served(ControllerMetrics(), lambda: True) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/nope") as resp:
            assert resp.status == 404
