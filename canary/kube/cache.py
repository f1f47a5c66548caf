"""In-memory copies of the watched objects: every read the controller makes comes from here.

kopf's watch streams feed ``put``/``remove``; reconciliations read without API calls, which is
what makes an idle Canary cost nothing. Every object is stored as its projection (see
``projection``: only what decisions and writes read); ConfigMaps and Secrets only as digests
of their data, never the data itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from canary.kube.projection import project
from canary.kube.revision import ConfigRef, data_digest


class Kind(StrEnum):
    CANARY = "Canary"
    METRIC_TEMPLATE = "MetricTemplate"
    DEPLOYMENT = "Deployment"
    DAEMON_SET = "DaemonSet"
    SERVICE = "Service"
    CONFIG_MAP = "ConfigMap"
    SECRET = "Secret"
    HPA = "HorizontalPodAutoscaler"
    SCALED_OBJECT = "ScaledObject"
    ROUTE = "Route"  # TrafficSplit or HTTPRoute; ``name`` carries the API group as a prefix


# Slotted: the cache holds a few keys for every object and every dependency edge.
@dataclass(frozen=True, order=True, slots=True)
class ObjectKey:
    kind: Kind
    namespace: str
    name: str

    @classmethod
    def route(cls, group: str, namespace: str, name: str) -> ObjectKey:
        return cls(Kind.ROUTE, namespace, f"{group}/{name}")

    @classmethod
    def config(cls, namespace: str, ref: ConfigRef) -> ObjectKey:
        return cls(Kind(ref.kind), namespace, ref.name)


@dataclass
class ClusterCache:
    _objects: dict[ObjectKey, Mapping[str, Any]] = field(default_factory=dict)
    _digests: dict[ObjectKey, str] = field(default_factory=dict)
    #: resourceVersions of the digest-only kinds, so writes to them can be conditional too.
    _versions: dict[ObjectKey, str] = field(default_factory=dict)
    #: Which canaries (by key) depend on which objects; maintained by the reconcilers. Most
    #: objects have one dependent, kept as the key itself: a set of one is some 200 bytes, and
    #: there are several such objects per Canary.
    _dependents: dict[ObjectKey, ObjectKey | set[ObjectKey]] = field(default_factory=dict)
    _deps_of: dict[ObjectKey, frozenset[ObjectKey]] = field(default_factory=dict)
    #: Versions known to be older than the cached copy: each the base of a write of ours whose
    #: result ``refresh`` stored. A watch running behind may still deliver them.
    _superseded: dict[ObjectKey, set[str]] = field(default_factory=dict)

    def put(self, key: ObjectKey, body: Mapping[str, Any]) -> None:
        """Store ``body`` as the watch delivered it. A version our own writes already replaced is
        ignored: storing it would hand the next pass an object older than one it wrote itself,
        whose writes would then be refused as stale (and a route one step behind its status would
        read as changed by someone else)."""
        behind = self._superseded.get(key)
        if behind is not None:
            if resource_version(body) in behind:
                return
            # The watch has delivered our version or a newer one: older ones cannot follow.
            del self._superseded[key]
        self._store(key, body)

    def _store(self, key: ObjectKey, body: Mapping[str, Any]) -> None:
        if key.kind in (Kind.CONFIG_MAP, Kind.SECRET):
            self._digests[key] = data_digest(body)
            self._versions[key] = resource_version(body) or ""
        else:
            self._objects[key] = project(key.kind, body)

    def remove(self, key: ObjectKey) -> None:
        self._superseded.pop(key, None)
        self._objects.pop(key, None)
        self._digests.pop(key, None)
        self._versions.pop(key, None)

    def version(self, key: ObjectKey) -> str | None:
        """The resourceVersion of the cached copy; None when nothing is cached."""
        if key in self._versions:
            return self._versions[key] or None
        body = self._objects.get(key)
        return None if body is None else resource_version(body)

    def refresh(self, key: ObjectKey, body: Mapping[str, Any] | None, stale: str | None) -> bool:
        """Store ``body`` read from, or written to, the API server, unless the watch already moved
        the cached copy past ``stale`` (the version it replaces, or a write was refused for).
        True when stored."""
        if self.version(key) != stale:
            return False
        if body is None:
            self.remove(key)
            return True
        if stale is not None and resource_version(body) != stale:
            self._superseded.setdefault(key, set()).add(stale)
        self._store(key, body)
        return True

    def get(self, key: ObjectKey) -> Mapping[str, Any] | None:
        return self._objects.get(key)

    def digest(self, key: ObjectKey) -> str | None:
        return self._digests.get(key)

    def has(self, key: ObjectKey) -> bool:
        return key in self._objects or key in self._digests

    def set_dependencies(self, canary: ObjectKey, deps: Iterable[ObjectKey]) -> None:
        new = frozenset(deps)
        old = self._deps_of.get(canary, frozenset())
        for key in old - new:
            self._drop_dependent(key, canary)
        for key in new - old:
            self._add_dependent(key, canary)
        self._deps_of[canary] = new

    def _add_dependent(self, key: ObjectKey, canary: ObjectKey) -> None:
        held = self._dependents.get(key)
        if held is None:
            self._dependents[key] = canary
        elif isinstance(held, set):
            held.add(canary)
        elif held != canary:
            self._dependents[key] = {held, canary}

    def _drop_dependent(self, key: ObjectKey, canary: ObjectKey) -> None:
        held = self._dependents.get(key)
        if isinstance(held, set):
            held.discard(canary)
            if len(held) == 1:
                self._dependents[key] = next(iter(held))
        elif held == canary:
            del self._dependents[key]

    def forget_canary(self, canary: ObjectKey) -> None:
        self.set_dependencies(canary, ())
        self._deps_of.pop(canary, None)

    def dependents(self, key: ObjectKey) -> frozenset[ObjectKey]:
        held = self._dependents.get(key)
        if held is None:
            return frozenset()
        return frozenset(held) if isinstance(held, set) else frozenset((held,))


def resource_version(body: Mapping[str, Any]) -> str | None:
    return ((body.get("metadata") or {}).get("resourceVersion")) or None
