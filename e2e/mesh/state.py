"""The objects the watches currently hold, owned by the event loop.

Watch threads hand their events to :meth:`ClusterState.apply` through the loop
(``call_soon_threadsafe``), so the state is only ever touched from one thread. Each change calls
``on_change``, which schedules a rebuild of the routing table; :meth:`observed` is the input of
that rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from e2e.mesh.objects import HTTPRoute, Pod, Service, TrafficSplit
from e2e.mesh.route_groups import HTTPRouteGroup
from e2e.mesh.routes import Rejected
from e2e.mesh.routing import Observed
from e2e.mesh.watch import Relisted, Removed, Upserted, WatchEvent


def _key(obj: object) -> tuple[str, str]:
    if isinstance(obj, Rejected):
        return (obj.namespace, obj.name)
    meta = getattr(obj, "meta", None)
    if meta is None:
        raise TypeError(f"cannot key {obj!r}")
    key: tuple[str, str] = meta.key
    return key


class ClusterState:
    def __init__(self, kinds: Iterable[str], on_change: Callable[[], None] = lambda: None) -> None:
        self._objects: dict[str, dict[tuple[str, str], object]] = {k: {} for k in kinds}
        self._versions: dict[str, str | None] = {}
        self._on_change = on_change

    def apply(self, event: WatchEvent) -> None:
        store = self._objects.setdefault(event.kind, {})
        if isinstance(event, Relisted):
            self._versions[event.kind] = event.version
            store.clear()
            store.update((_key(o), o) for o in event.objects)
        elif isinstance(event, Upserted):
            store[_key(event.obj)] = event.obj
        elif isinstance(event, Removed):
            if store.pop(event.key, None) is None:
                return
        self._on_change()

    def synced(self) -> bool:
        """Whether every resource has been listed (or found not served) at least once."""
        return all(kind in self._versions for kind in self._objects)

    def resources(self) -> dict[str, Any]:
        return {
            kind: {
                "synced": kind in self._versions,
                "version": self._versions.get(kind),
                "objects": len(store),
            }
            for kind, store in sorted(self._objects.items())
        }

    def observed(self) -> Observed:
        services, pods, splits, routes, groups, rejected = [], [], [], [], [], []
        for store in self._objects.values():
            for obj in store.values():
                if isinstance(obj, Service):
                    services.append(obj)
                elif isinstance(obj, Pod):
                    pods.append(obj)
                elif isinstance(obj, TrafficSplit):
                    splits.append(obj)
                elif isinstance(obj, HTTPRoute):
                    routes.append(obj)
                elif isinstance(obj, HTTPRouteGroup):
                    groups.append(obj)
                elif isinstance(obj, Rejected):
                    rejected.append(obj)
        return Observed(
            services=tuple(services),
            pods=tuple(pods),
            splits=tuple(splits),
            http_routes=tuple(routes),
            route_groups=tuple(groups),
            rejected=tuple(rejected),
        )
