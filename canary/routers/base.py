"""The router interface: how the controller tells a mesh to split traffic.

A router is pure: it builds the whole desired object for a split and reads the weights back
from an object found in the cluster. Reading and writing objects is the Kubernetes layer's job
(``canary.kube.routes``), so each router is tested on exact bodies without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from canary.domain.weights import Weights
from canary.routers.options import NO_OPTIONS, RouteOptions

__all__ = ["Companion", "RouteOptions", "RouteResource", "RouteTarget", "Router", "Weights"]


@dataclass(frozen=True)
class RouteTarget:
    """What a route object is built from: names, the Canary's route options and the revision.
    The route object is named after the apex Service."""

    namespace: str
    apex: str  # the Service clients call: <service.name>
    primary: str  # <service.name>-primary
    canary: str  # <service.name>-canary
    port: int
    #: ownerReferences entry pointing at the Canary, so the route is garbage-collected with it.
    owner: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    #: What the Canary asks of the route beyond the split (hosts, filters, A/B, ...).
    options: RouteOptions = NO_OPTIONS
    #: The revision under analysis (status ``lastAppliedSpec``); the session cookie's value.
    revision: str = ""

    def metadata(self) -> dict[str, Any]:
        """The route object's metadata: named after the apex, owned by the Canary."""
        meta: dict[str, Any] = {"name": self.apex, "namespace": self.namespace}
        if self.labels:
            meta["labels"] = dict(self.labels)
        if self.owner:
            meta["ownerReferences"] = [dict(self.owner)]
        return meta


@dataclass(frozen=True)
class RouteResource:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


@dataclass(frozen=True)
class Companion:
    """An object a route names and cannot work without (an SMI ``HTTPRouteGroup`` that a
    TrafficSplit's ``matches`` refer to). The Kubernetes layer writes it before the route, fenced
    like the route, and counts the route as written only while the companion's ``spec`` in the
    cluster equals ``body``'s. Owned by the Canary like the route, so garbage collection removes
    it; one nobody references any more routes nothing, so it is left in place between runs."""

    resource: RouteResource
    body: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


class Router(Protocol):
    """One implementation per API and version; see ``canary.routers.factory``."""

    @property
    def resource(self) -> RouteResource | None:
        """The kind of route object written; ``None`` for a router that writes none (the apex
        Service's selector is the route: ``provider: kubernetes``, blue/green only)."""
        ...

    def build(self, target: RouteTarget, weights: Weights) -> dict[str, Any]:
        """The complete object (apiVersion, kind, metadata, spec) routing ``weights`` with the
        target's options; :class:`~canary.errors.RouterError` for what it cannot express
        (never a route that silently does less)."""
        ...

    def read_weights(self, target: RouteTarget, obj: Mapping[str, Any]) -> Weights | None:
        """Weights of an object found in the cluster, as percentages (with ``experiment`` when
        the object routes the experiment); ``None`` when the object is not what ``build`` writes
        for ``target`` (someone else changed it, or the Canary's options did)."""
        ...

    @property
    def companion_resources(self) -> tuple[RouteResource, ...]:
        """Every kind of :class:`Companion` this router may write (to watch and re-read them)."""
        ...

    def companions(self, target: RouteTarget) -> tuple[Companion, ...]:
        """The objects the route for ``target`` names, complete; empty for most routers. They do
        not depend on the weights: one is harmless while the route does not name it."""
        ...
