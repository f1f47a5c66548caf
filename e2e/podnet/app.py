"""The pod-network process: a Pod watch feeding the pod servers, and a control endpoint.

One watch thread (:class:`e2e.mesh.watch.Watcher`) lists and watches Pods in every namespace and
puts its events on the event loop; each change marks the state dirty, and one reconcile task
brings the servers in line with all observed Pods, coalescing a burst (a relist, a rollout) into
one pass. ``GET /healthz`` on the control port answers 200 once the first list is served, and
``GET /served`` lists what is served (JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from e2e.mesh.kubeapi import ApiClientTransport, Transport, load_configuration
from e2e.mesh.watch import Relisted, Removed, ResourceKind, Upserted, WatchEvent, Watcher
from e2e.podnet.pods import PodAddress, parse_pod_address
from e2e.podnet.servers import PodServers
from e2e.podnet.sockets import NamespaceSockets
from e2e.serving import serve_until_signalled

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.01
#: A server that could not start (its address still held by a closing socket, say) is retried
#: this long after, even if no Pod changes meanwhile.
RETRY_SECONDS = 0.5
PODS = ResourceKind("Pod", "", "pods", parse_pod_address, version="v1", watch_timeout=120.0)


@dataclass(frozen=True)
class PodNetConfig:
    kubeconfig: Path | None
    netns: str
    cidr: ipaddress.IPv4Network
    control_host: str = "127.0.0.1"
    control_port: int = 0


class PodNetApp:
    def __init__(self, config: PodNetConfig) -> None:
        self.config = config
        configuration = load_configuration(config.kubeconfig)

        def transport() -> Transport:
            return ApiClientTransport(configuration)

        self._sockets = NamespaceSockets(config.netns)
        self.servers = PodServers(self._sockets)
        self._pods: dict[tuple[str, str], PodAddress] = {}
        self._listed = False
        self._ready = False
        self._dirty = asyncio.Event()
        self._watcher = Watcher(PODS, transport, self._sink_from_thread)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._control: web.AppRunner | None = None
        self.control_port = 0

    def _sink_from_thread(self, event: WatchEvent) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while the thread was reporting
                self._loop.call_soon_threadsafe(self._apply, event)

    def _apply(self, event: WatchEvent) -> None:
        if isinstance(event, Relisted):
            self._pods = {pod.key: pod for pod in event.objects if isinstance(pod, PodAddress)}
            self._listed = True
        elif isinstance(event, Upserted) and isinstance(event.obj, PodAddress):
            self._pods[event.obj.key] = event.obj
        elif isinstance(event, Removed):
            self._pods.pop(event.key, None)
        self._dirty.set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/served", self._served)
        self._control = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._control.setup()
        await self._sockets.enter()
        # Our own socket, so the port picked for port 0 is known.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.control_host, self.config.control_port))
        await web.SockSite(self._control, sock).start()
        self.control_port = sock.getsockname()[1]
        self._reconciler = self._loop.create_task(self._reconcile())
        self._watcher.start()
        log.info("pod network: pods of %s served in netns %s; control on %s:%d",
                 self.config.cidr, self.config.netns, self.config.control_host, self.control_port)

    async def stop(self) -> None:
        self._watcher.stop()
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        await self.servers.close()
        if self._control is not None:
            await self._control.cleanup()
        self._sockets.close()
        await asyncio.to_thread(self._watcher.join, 2.0)

    async def _reconcile(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(COALESCE_SECONDS)
            self._dirty.clear()
            served = [pod for pod in self._pods.values() if pod.served_in(self.config.cidr)]
            try:
                failed = await self.servers.apply(served)
            except Exception:  # noqa: BLE001 - keep serving what is served, and try again
                log.exception("updating the pod servers failed")
                failed = 1
            if failed:
                asyncio.get_running_loop().call_later(RETRY_SECONDS, self._dirty.set)
            if self._listed and not self._ready:
                self._ready = True
                log.info("initial list done: %d pods, %d to serve", len(self._pods), len(served))

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(status=200 if self._ready else 503, text="ok\n" if self._ready else "listing\n")

    async def _served(self, _: web.Request) -> web.Response:
        return web.json_response({
            "cidr": str(self.config.cidr),
            "netns": self.config.netns,
            "servers": [server.as_json() for server in self.servers.servers()],
        })


async def run(config: PodNetConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    await serve_until_signalled(PodNetApp(config))
