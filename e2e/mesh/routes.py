"""What a route is: the rules that say where requests sent to one Service (or, north-south,
one host) go, each with its backends and their endpoints, built by :mod:`e2e.mesh.routing`
from the observed objects. Shared by the builders of each kind of route
(:mod:`e2e.mesh.http_route_rules`, :mod:`e2e.mesh.split_rules`) and the proxy.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from fractions import Fraction
from typing import Any

from e2e.mesh.filters import NO_FILTERS, Filters
from e2e.mesh.objects import CATCH_ALL, ObjectMeta, RouteMatch, Service

#: TrafficSplit weights that sum to 0 leave nowhere to send a request.
ZERO_WEIGHT_STATUS_SPLIT = 503
#: Gateway API: "If all entries in BackendRefs are invalid, and there are also no filters
#: specified in this route rule, all traffic which matches this rule MUST receive a 500".
ZERO_WEIGHT_STATUS_HTTPROUTE = 500


@dataclass(frozen=True)
class Endpoint:
    """A ready Pod that a Service selects."""

    namespace: str
    name: str
    uid: str
    deployment: str
    pod_template_hash: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    daemonset: str = ""


#: Ready endpoints per Service, keyed by (namespace, name).
EndpointsByService = Mapping[tuple[str, str], tuple[Endpoint, ...]]
#: The observed Services, keyed by (namespace, name).
ServicesByKey = Mapping[tuple[str, str], Service]


@dataclass(frozen=True)
class Backend:
    service: str
    weight: Fraction
    endpoints: tuple[Endpoint, ...]
    #: Why no request can reach this backend (unknown Service, invalid reference), or None.
    problem: str | None = None
    #: The status a request picked for this backend gets when it has a problem.
    problem_status: int = 503
    #: The backend Service's namespace ("" in hand-made tables: the route's).
    namespace: str = ""
    #: The backendRef's own filters (HTTPRoute), applied after the rule's.
    filters: Filters = field(default=NO_FILTERS, compare=False)


@dataclass(frozen=True)
class Mirror:
    """A ``RequestMirror`` target: a copy of ``fraction`` of the rule's requests goes there."""

    service: str
    namespace: str
    fraction: Fraction
    endpoints: tuple[Endpoint, ...]
    problem: str | None = None


@dataclass(frozen=True)
class Rule:
    backends: tuple[Backend, ...]
    matches: tuple[RouteMatch, ...] = (CATCH_ALL,)
    zero_weight_status: int = ZERO_WEIGHT_STATUS_SPLIT
    #: The rule's filters; its mirrors are resolved into :attr:`mirrors`.
    filters: Filters = NO_FILTERS
    mirrors: tuple[Mirror, ...] = ()
    #: Seconds before the proxy gives up and answers 504; None: no limit.
    timeout: float | None = None
    _cumulative: tuple[float, ...] = field(init=False, default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        running, cumulative = 0.0, []
        for backend in self.backends:
            running += float(backend.weight)
            cumulative.append(running)
        object.__setattr__(self, "_cumulative", tuple(cumulative))

    @property
    def total(self) -> Fraction:
        return sum((b.weight for b in self.backends), Fraction(0))

    def pick(self, rng: random.Random) -> Backend | None:
        """A backend at random in proportion to its weight; None when the weights sum to 0."""
        if not self._cumulative or self._cumulative[-1] <= 0:
            return None
        point = rng.random() * self._cumulative[-1]
        # bisect_right skips zero-weight backends: their cumulative value equals the previous one.
        index = bisect.bisect_right(self._cumulative, point)
        return self.backends[min(index, len(self.backends) - 1)]

    def weights(self) -> dict[str, Fraction]:
        out: dict[str, Fraction] = {}
        for backend in self.backends:
            out[backend.service] = out.get(backend.service, Fraction(0)) + backend.weight
        return out


@dataclass(frozen=True)
class Source:
    """The object a route comes from (kind ``Service`` when nothing overrides the Service)."""

    kind: str
    api_version: str
    name: str
    generation: int | None = None
    resource_version: str = ""

    @classmethod
    def of(cls, meta: ObjectMeta) -> Source:
        return cls(meta.kind, meta.api_version, meta.name, meta.generation, meta.resource_version)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "apiVersion": self.api_version,
            "name": self.name,
            "generation": self.generation,
            "resourceVersion": self.resource_version,
        }


@dataclass(frozen=True)
class Route:
    namespace: str
    service: str
    sources: tuple[Source, ...]
    rules: tuple[Rule, ...]
    #: (rule index, match) in the order they are tried: the Gateway API's precedence.
    candidates: tuple[tuple[int, RouteMatch], ...] = ()
    warnings: tuple[str, ...] = ()
    #: When this routing configuration (see :attr:`signature`) was first installed.
    since: float = 0.0
    #: The host a north-south route serves ("" for a Service's route).
    host: str = ""

    @cached_property
    def signature(self) -> tuple[object, ...]:
        """What identifies a routing configuration: its sources and every rule's weights.

        Endpoints and resourceVersions are left out, so pods coming and going, or an edit that
        does not touch routing, do not start a new configuration. Computed once per route (the
        proxy compares it on every request).
        """
        return (
            tuple((s.kind, s.api_version, s.name) for s in self.sources),
            tuple(
                (tuple((b.service, b.weight, b.filters) for b in r.backends), r.matches, r.filters, r.timeout)
                for r in self.rules
            ),
        )

    def select(
        self, method: str, path: str, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> int | None:
        """The index of the rule a request follows, or None when no rule matches it."""
        chosen = self.choose(method, path, headers, query)
        return chosen[0] if chosen is not None else None

    def choose(
        self, method: str, path: str, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> tuple[int, RouteMatch] | None:
        """The rule a request follows and the match that chose it (a URL rewrite of the
        matched prefix needs it), or None when no rule matches."""
        for index, match in self.candidates:
            if match.catch_all or match.matches(method, path, headers, query):
                return index, match
        return None


@dataclass(frozen=True)
class Rejected:
    kind: str
    namespace: str
    name: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "reason": self.reason}


def resolve_backend(
    namespace: str,
    name: str,
    weight: Fraction,
    services: ServicesByKey,
    endpoints: EndpointsByService,
) -> Backend:
    """A backend Service with its endpoints, or with the problem that it does not exist."""
    if (namespace, name) not in services:
        return Backend(
            service=name, weight=weight, endpoints=(), problem=f"Service {namespace}/{name} does not exist", namespace=namespace
        )
    return Backend(service=name, weight=weight, endpoints=endpoints.get((namespace, name), ()), namespace=namespace)


def plain_route(service: Service, endpoints: EndpointsByService) -> Route:
    """A Service without split or route: every request to its own ready endpoints."""
    backend = Backend(
        service=service.meta.name,
        weight=Fraction(1),
        endpoints=endpoints.get(service.meta.key, ()),
        namespace=service.meta.namespace,
    )
    return Route(
        namespace=service.meta.namespace,
        service=service.meta.name,
        sources=(Source.of(service.meta),),
        rules=(Rule(backends=(backend,)),),
        candidates=((0, CATCH_ALL),),
    )


def rejection(meta: ObjectMeta, reason: str) -> Rejected:
    return Rejected(kind=meta.kind, namespace=meta.namespace, name=meta.name, reason=reason)
