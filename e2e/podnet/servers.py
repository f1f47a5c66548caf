"""One HTTP server per served ``podIP:port``, answering as the Pod's annotations say.

Every answer carries ``x-canary-pod: <namespace>/<pod>`` and ``x-canary-version: <the
sim.canary.dev/version annotation>`` so a client (the load generator, through Traefik) can count
who answered. A server is started when its Pod is Running with an address of the run's range and
stopped when the Pod is deleted, stops running or changes address: its listening socket is closed
at once (new connections are refused), and connections already open get a short grace to finish
what they carry, as a terminating container would.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from e2e.mesh.behaviour import VERSION, Behaviour, parse_behaviour
from e2e.podnet.pods import PodAddress
from e2e.podnet.sockets import NamespaceSockets

log = logging.getLogger(__name__)

POD_HEADER = "x-canary-pod"
VERSION_HEADER = "x-canary-version"
#: How long a stopped server lets open connections finish (a terminating Pod's grace period).
SHUTDOWN_GRACE = 1.0

Endpoint = tuple[str, int]


@dataclass
class PodServer:
    pod: PodAddress
    port: int
    behaviour: Behaviour
    version: str
    answered: Counter[int] = field(default_factory=Counter)
    http: web.Server | None = None
    listener: asyncio.Server | None = None

    @property
    def endpoint(self) -> Endpoint:
        return self.pod.ip, self.port

    def as_json(self) -> dict[str, Any]:
        return {
            "address": self.pod.ip,
            "port": self.port,
            "namespace": self.pod.namespace,
            "name": self.pod.name,
            "uid": self.pod.uid,
            "labels": dict(self.pod.labels),
            "version": self.version,
            "behaviour": self.behaviour.as_json(),
            "answered": {str(code): count for code, count in sorted(self.answered.items())},
        }

    def update(self, pod: PodAddress) -> None:
        behaviour, problems = parse_behaviour(pod.annotations)
        for problem in problems:
            log.warning("pod %s: ignoring annotation %s", pod.ref, problem)
        self.pod, self.behaviour, self.version = pod, behaviour, pod.annotations.get(VERSION, "")


def _handler(server: PodServer, rng: random.Random) -> Callable[[BaseRequest], Awaitable[web.StreamResponse]]:
    async def handle(request: BaseRequest) -> web.StreamResponse:
        behaviour = server.behaviour
        if behaviour.latency_ms > 0:
            await asyncio.sleep(behaviour.latency_ms / 1000.0)
        failed = behaviour.error_rate > 0 and rng.random() < behaviour.error_rate
        status = behaviour.failure_status if failed else 200
        server.answered[status] += 1
        pod = server.pod.ref
        return web.Response(
            status=status,
            text=f"{pod} version={server.version or '-'} status={status}\n",
            headers={POD_HEADER: pod, VERSION_HEADER: server.version},
        )

    return handle


class PodServers:
    """The servers of every served Pod, kept equal to the Pods observed by :meth:`apply`."""

    def __init__(self, sockets: NamespaceSockets, rng: random.Random | None = None) -> None:
        self._sockets = sockets
        self._rng = rng or random.Random()
        self._servers: dict[Endpoint, PodServer] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def servers(self) -> list[PodServer]:
        return [self._servers[endpoint] for endpoint in sorted(self._servers)]

    async def apply(self, served: Iterable[PodAddress]) -> int:
        """Serve exactly the endpoints of ``served`` (Pods already known to be in the range); how
        many could not be started (the caller retries)."""
        wanted: dict[Endpoint, PodAddress] = {}
        for pod in served:
            for port in pod.ports:
                other = wanted.get((pod.ip, port))
                if other is not None and other.uid != pod.uid:
                    # kwok gave the address to a new Pod before the old one's deletion arrived.
                    log.warning("pods %s and %s both claim %s:%d; serving %s", other.ref, pod.ref, pod.ip, port, pod.ref)
                wanted[(pod.ip, port)] = pod
        for endpoint, running in list(self._servers.items()):
            claimant = wanted.get(endpoint)
            if claimant is None or claimant.uid != running.pod.uid:
                self._stop(endpoint, "gone" if claimant is None else f"replaced by {claimant.ref}")
        failed = 0
        for endpoint, pod in wanted.items():
            current = self._servers.get(endpoint)
            if current is not None:
                current.update(pod)
                continue
            try:
                await self._start(pod, endpoint[1])
            except OSError as exc:
                failed += 1
                log.error("pod %s: cannot listen on %s:%d: %s", pod.ref, pod.ip, endpoint[1], exc)
        return failed

    async def close(self) -> None:
        for endpoint in list(self._servers):
            self._stop(endpoint, "shutting down")
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    async def _start(self, pod: PodAddress, port: int) -> None:
        server = PodServer(pod=pod, port=port, behaviour=Behaviour(), version="")
        server.update(pod)
        sock = await self._sockets.listen(pod.ip, port)
        http = web.Server(_handler(server, self._rng), access_log=None)
        try:
            listener = await asyncio.get_running_loop().create_server(http, sock=sock)
        except BaseException:
            sock.close()
            raise
        server.http, server.listener = http, listener
        self._servers[server.endpoint] = server
        log.info("pod %s: serving %s:%d (version %r, %s)", pod.ref, pod.ip, port, server.version,
                 server.behaviour.as_json())

    def _stop(self, endpoint: Endpoint, why: str) -> None:
        server = self._servers.pop(endpoint)
        log.info("pod %s: stopped serving %s:%d (%s)", server.pod.ref, *endpoint, why)
        if server.listener is not None:
            server.listener.close()
        if server.http is not None:
            task = asyncio.get_running_loop().create_task(server.http.shutdown(SHUTDOWN_GRACE))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
