"""The mesh process: watches feeding the data plane.

Five watch threads (Services, Pods, TrafficSplits, HTTPRouteGroups, HTTPRoutes) put their events on the event
loop; every change marks the state dirty, and one reconcile task rebuilds the routing table
from the whole state and applies it, coalescing bursts (a relist, a rollout) into one rebuild.
A rebuild costs well under a millisecond for a test cluster, so a weight change is live a few
milliseconds after its watch event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.mesh.dataplane import DataPlane
from e2e.mesh.kubeapi import ApiClientTransport, Transport, load_configuration
from e2e.mesh.objects import parse_http_route, parse_pod, parse_service, parse_traffic_split
from e2e.mesh.route_groups import parse_http_route_group
from e2e.serving import serve_until_signalled
from e2e.mesh.state import ClusterState
from e2e.mesh.watch import ResourceKind, WatchEvent, Watcher

log = logging.getLogger(__name__)

#: The cluster's own namespaces: their Pods are not the simulated applications.
SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")
#: Bursts of watch events within this window become one rebuild.
COALESCE_SECONDS = 0.02


def default_resources(crd_watch_timeout: float = 10.0) -> tuple[ResourceKind, ...]:
    return (
        ResourceKind("Service", "", "services", parse_service, version="v1", watch_timeout=120.0),
        ResourceKind("Pod", "", "pods", parse_pod, version="v1", watch_timeout=120.0),
        ResourceKind(
            "TrafficSplit", "split.smi-spec.io", "trafficsplits", parse_traffic_split, watch_timeout=crd_watch_timeout
        ),
        ResourceKind(
            "HTTPRouteGroup",
            "specs.smi-spec.io",
            "httproutegroups",
            parse_http_route_group,
            watch_timeout=crd_watch_timeout,
        ),
        ResourceKind(
            "HTTPRoute",
            "gateway.networking.k8s.io",
            "httproutes",
            parse_http_route,
            prefer=("v1", "v1beta1"),
            watch_timeout=crd_watch_timeout,
        ),
    )


@dataclass(frozen=True)
class MeshConfig:
    kubeconfig: Path | None = None
    metrics_flavour: str = "linkerd"
    host: str = "127.0.0.1"
    proxy_port: int = 0
    control_port: int = 0
    metrics_port: int = 0
    seed: int | None = None
    #: How often discovery is polled for an API group that is not served.
    absent_poll: float = 2.0
    #: How often discovery is re-checked for a served custom resource (its watch timeout).
    crd_watch_timeout: float = 10.0
    #: Namespaces whose objects the mesh ignores.
    ignore_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES


class MeshApp:
    def __init__(
        self,
        config: MeshConfig,
        *,
        transport_factory: Callable[[], Transport] | None = None,
        resources: Sequence[ResourceKind] | None = None,
    ) -> None:
        self.config = config
        if transport_factory is None:
            configuration = load_configuration(config.kubeconfig)

            def transport_factory() -> Transport:
                return ApiClientTransport(configuration)

        self._transport_factory = transport_factory
        self._resources = tuple(resources or default_resources(config.crd_watch_timeout))
        self._dirty = asyncio.Event()
        self.state = ClusterState([r.kind for r in self._resources], on_change=self._dirty.set)
        self.plane = DataPlane(flavour=config.metrics_flavour, host=config.host, seed=config.seed, health=self.health)
        self._watchers: list[Watcher] = []
        self._reconciler: asyncio.Task[None] | None = None
        self._ready = False

    def health(self) -> tuple[bool, Mapping[str, Any]]:
        return self._ready, {"resources": self.state.resources()}

    async def start(self) -> None:
        c = self.config
        await self.plane.start(proxy_port=c.proxy_port, control_port=c.control_port, metrics_port=c.metrics_port)
        loop = asyncio.get_running_loop()

        def sink(event: WatchEvent) -> None:
            # Called from watch threads; after shutdown the loop is closed and events are moot.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.state.apply, event)

        self._reconciler = loop.create_task(self._reconcile())
        for resource in self._resources:
            watcher = Watcher(
                resource,
                self._transport_factory,
                sink,
                absent_poll=c.absent_poll,
                ignore_namespaces=frozenset(c.ignore_namespaces),
            )
            self._watchers.append(watcher)
            watcher.start()
        log.info(
            "mesh data plane (%s metrics): proxy %s:%d, control %s:%d, metrics %s:%d",
            c.metrics_flavour, c.host, self.plane.proxy_port, c.host, self.plane.control_port,
            c.host, self.plane.metrics_port,
        )  # fmt: skip

    async def stop(self) -> None:
        log.info("stopping")
        for watcher in self._watchers:
            watcher.stop()
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        await self.plane.close()
        for watcher in self._watchers:
            # Daemon threads: a read that ignores the abort cannot hold the process up.
            await asyncio.to_thread(watcher.join, 2.0)

    async def _reconcile(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(COALESCE_SECONDS)
            self._dirty.clear()
            synced = self.state.synced()
            try:
                await self.plane.apply(self.state.observed())
            except Exception:  # noqa: BLE001 - keep routing with the last good table
                log.exception("applying the observed objects failed; keeping the previous routing table")
                continue
            if synced and not self._ready:
                self._ready = True
                log.info("initial lists done: %s", _summary(self.state.resources()))


def _summary(resources: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{kind} {info['objects']} via {info['version']}" if info["version"] else f"{kind} not served"
        for kind, info in resources.items()
    )


async def run(config: MeshConfig) -> None:
    """Run the mesh until SIGTERM or SIGINT."""
    await serve_until_signalled(MeshApp(config))
