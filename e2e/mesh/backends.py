"""One real HTTP server per ready Pod, standing in for the Pod's container.

A server starts when its Pod becomes ready and stops when the Pod goes away or turns unready.
Its answers follow the Pod's ``sim.canary.dev/*`` annotations (see :mod:`e2e.mesh.behaviour`),
re-read whenever the Pod changes. Each listens on its own ephemeral loopback port, so traffic
to a Pod really crosses a socket, and a Pod whose server is gone really refuses connections.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from e2e.mesh.behaviour import VERSION, Behaviour, parse_behaviour
from e2e.mesh.objects import Pod
from e2e.mesh.routes import Endpoint

log = logging.getLogger(__name__)

#: How long a stopping server lets requests in flight finish (a terminating Pod's grace period).
SHUTDOWN_GRACE = 1.0


@dataclass
class PodServer:
    namespace: str
    name: str
    uid: str
    deployment: str
    behaviour: Behaviour
    #: The ``sim.canary.dev/version`` annotation, echoed in answers so a reader sees which
    #: release served a request.
    version: str = ""
    problems: tuple[str, ...] = ()
    port: int = 0
    runner: web.AppRunner | None = None
    served: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "deployment": self.deployment,
            "version": self.version,
            "port": self.port,
            "behaviour": self.behaviour.as_json(),
            "problems": list(self.problems),
            "served": dict(self.served),
        }


class BackendPool:
    def __init__(self, rng: random.Random | None = None, *, host: str = "127.0.0.1") -> None:
        self._rng = rng or random.Random()
        self._host = host
        self._servers: dict[tuple[str, str], PodServer] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def port_of(self, endpoint: Endpoint) -> int | None:
        server = self._servers.get((endpoint.namespace, endpoint.name))
        if server is None or server.uid != endpoint.uid:
            return None
        return server.port

    def servers(self) -> list[PodServer]:
        return [self._servers[k] for k in sorted(self._servers)]

    async def start_missing(self, ready: Iterable[Pod]) -> None:
        """Start a server for every ready Pod without one; refresh the behaviour of the others."""
        for pod in ready:
            key = pod.meta.key
            behaviour, problems = parse_behaviour(pod.annotations)
            server = self._servers.get(key)
            if server is not None and server.uid != pod.meta.uid:
                # Same name, new Pod (a StatefulSet-style replacement): a fresh server.
                self._stop(key)
                server = None
            if server is None:
                server = PodServer(
                    namespace=pod.meta.namespace,
                    name=pod.meta.name,
                    uid=pod.meta.uid,
                    deployment=pod.deployment,
                    behaviour=behaviour,
                    version=pod.annotations.get(VERSION, ""),
                    problems=problems,
                )
                await self._start(server)
                self._servers[key] = server
                log.info("pod %s/%s ready: serving on port %d (%s)", *key, server.port, _describe(behaviour))
            elif server.behaviour != behaviour or server.problems != problems:
                server.behaviour, server.problems = behaviour, problems
                server.version = pod.annotations.get(VERSION, "")
                log.info("pod %s/%s behaviour now %s", *key, _describe(behaviour))
            else:
                continue
            for problem in problems:
                log.warning("pod %s/%s: ignoring annotation %s", *key, problem)

    def stop_absent(self, ready: Iterable[Pod]) -> None:
        """Stop the servers of Pods that are no longer ready (in the background)."""
        keep = {pod.meta.key: pod.meta.uid for pod in ready}
        for key, server in list(self._servers.items()):
            if keep.get(key) != server.uid:
                log.info("pod %s/%s gone or unready: stopping its server", *key)
                self._stop(key)

    async def close(self) -> None:
        for key in list(self._servers):
            self._stop(key)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    def _stop(self, key: tuple[str, str]) -> None:
        server = self._servers.pop(key)
        if server.runner is not None:
            task = asyncio.get_running_loop().create_task(server.runner.cleanup())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def _start(self, server: PodServer) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handler(server))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self._host, 0))
            sock.listen(128)
            sock.setblocking(False)
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        server.port = sock.getsockname()[1]
        server.runner = runner

    def _handler(self, server: PodServer) -> Callable[[web.Request], Awaitable[web.Response]]:
        rng = self._rng

        async def handle(request: web.Request) -> web.Response:
            behaviour = server.behaviour
            if behaviour.latency_ms > 0:
                await asyncio.sleep(behaviour.latency_ms / 1000.0)
            failed = behaviour.error_rate > 0 and rng.random() < behaviour.error_rate
            status = behaviour.failure_status if failed else 200
            server.served[str(status)] += 1
            return web.json_response(
                {
                    "pod": server.name,
                    "namespace": server.namespace,
                    "deployment": server.deployment,
                    "version": server.version,
                    "status": status,
                    "path": request.path,
                    # What arrived, after the route's filters: tests check rewrites and headers.
                    "host": request.host,
                    "query": request.query_string,
                    "headers": {k: v for k, v in request.headers.items()},
                },
                status=status,
            )

        return handle


def _describe(behaviour: Behaviour) -> str:
    return (
        f"error-rate {behaviour.error_rate:g}, latency {behaviour.latency_ms:g}ms, "
        f"failure status {behaviour.failure_status}"
    )
