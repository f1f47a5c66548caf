"""The data plane: proxy, Pod servers, metrics, stats, load generator and control API, fed with
observed objects by whoever watches the cluster (or directly by a test).

:meth:`DataPlane.apply` turns a set of observed objects into running state, in the order that
never sends a request to a server that is not there: start the servers of newly ready Pods,
install the new routing table, then stop the servers of Pods that left it.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from e2e.mesh.backends import BackendPool
from e2e.mesh.control import Health, control_app
from e2e.mesh.loadgen import LoadGenerator
from e2e.mesh.metrics import MeshMetrics, make_metrics, metrics_app
from e2e.mesh.proxy import Proxy
from e2e.mesh.routing import EMPTY_TABLE, Observed, RoutingTable, build_table, carry_since
from e2e.mesh.stats import Stats


def _always_healthy() -> tuple[bool, Mapping[str, Any]]:
    return True, {}


class DataPlane:
    def __init__(
        self,
        *,
        flavour: str = "linkerd",
        host: str = "127.0.0.1",
        seed: int | None = None,
        health: Health = _always_healthy,
    ) -> None:
        rng = random.Random(seed)
        self.host = host
        self.metrics: MeshMetrics = make_metrics(flavour)
        self.stats = Stats()
        self.backends = BackendPool(random.Random(rng.getrandbits(64)), host=host)
        self._table: RoutingTable = EMPTY_TABLE
        self._apply_lock = asyncio.Lock()
        self.proxy = Proxy(
            table=self.table,
            port_of=self.backends.port_of,
            metrics=self.metrics,
            stats=self.stats,
            rng=random.Random(rng.getrandbits(64)),
            backend_host=host,
        )
        self.loadgen: LoadGenerator | None = None
        self._health = health
        self._runners: list[web.AppRunner] = []
        self.proxy_port = self.control_port = self.metrics_port = 0

    def table(self) -> RoutingTable:
        return self._table

    async def start(self, *, proxy_port: int = 0, control_port: int = 0, metrics_port: int = 0) -> None:
        """Listen on the given loopback ports (0: any free one; read the ``*_port`` attributes)."""
        self.proxy_port = await self._serve(self.proxy.app(), proxy_port)
        self.loadgen = LoadGenerator(f"http://{self.host}:{self.proxy_port}")
        self.metrics_port = await self._serve(metrics_app(self.metrics), metrics_port)
        self.control_port = await self._serve(
            control_app(
                table=self.table,
                stats=self.stats,
                loadgen=self.loadgen,
                backends=self.backends,
                health=self._health,
            ),
            control_port,
        )

    async def apply(self, observed: Observed) -> RoutingTable:
        async with self._apply_lock:
            ready = [p for p in observed.pods if p.ready]
            await self.backends.start_missing(ready)
            self._table = carry_since(self._table, build_table(observed), time.time())
            self.backends.stop_absent(ready)
            return self._table

    async def close(self) -> None:
        if self.loadgen is not None:
            await self.loadgen.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.backends.close()

    async def _serve(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            sock.listen(1024)
            sock.setblocking(False)
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runners.append(runner)
        bound: int = sock.getsockname()[1]
        return bound
