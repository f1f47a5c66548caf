"""The routing table: a pure function of the objects the mesh has observed.

For every Service ("apex") the table says where a request addressed to it goes:

* An ``HTTPRoute`` whose ``parentRefs`` name the Service (``group: ""``, ``kind: Service``, the
  GAMMA pattern) routes it by its rules. Several such routes merge, rules ordered by the
  Gateway API's precedence. HTTPRoutes win over TrafficSplits, as in Linkerd, whose policy
  controller puts HTTPRoutes above the ServiceProfiles its SMI extension derives from splits.
* Else a ``TrafficSplit`` whose ``spec.service`` is the Service splits it over the backends by
  relative weight. Of several, the oldest applies (the others are reported).
* Else the Service sends requests to its own ready endpoints, as plain Kubernetes does.

A backend Service's endpoints are the ready Pods of its namespace whose labels include its
selector; a split never recurses into a backend's own split. The proxy picks a rule, a backend
by weight, then an endpoint uniformly.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from fractions import Fraction
from typing import Any

from e2e.mesh.objects import CATCH_ALL, HTTPRoute, ObjectMeta, Pod, RouteMatch, Service, TrafficSplit
from e2e.mesh.weights import weight_json

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


@dataclass(frozen=True)
class Backend:
    service: str
    weight: Fraction
    endpoints: tuple[Endpoint, ...]
    #: Why no request can reach this backend (unknown Service, invalid reference), or None.
    problem: str | None = None
    #: The status a request picked for this backend gets when it has a problem.
    problem_status: int = 503


@dataclass(frozen=True)
class Rule:
    backends: tuple[Backend, ...]
    matches: tuple[RouteMatch, ...] = (CATCH_ALL,)
    zero_weight_status: int = ZERO_WEIGHT_STATUS_SPLIT
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

    @cached_property
    def signature(self) -> tuple[object, ...]:
        """What identifies a routing configuration: its sources and every rule's weights.

        Endpoints and resourceVersions are left out, so pods coming and going, or an edit that
        does not touch routing, do not start a new configuration. Computed once per route (the
        proxy compares it on every request).
        """
        return (
            tuple((s.kind, s.api_version, s.name) for s in self.sources),
            tuple((tuple((b.service, b.weight) for b in r.backends), r.matches) for r in self.rules),
        )

    def select(
        self, method: str, path: str, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> int | None:
        """The index of the rule a request follows, or None when no rule matches it."""
        for index, match in self.candidates:
            if match.catch_all or match.matches(method, path, headers, query):
                return index
        return None


@dataclass(frozen=True)
class Rejected:
    kind: str
    namespace: str
    name: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class Observed:
    """Everything the table is built from: what the watches currently hold."""

    services: tuple[Service, ...] = ()
    pods: tuple[Pod, ...] = ()
    splits: tuple[TrafficSplit, ...] = ()
    http_routes: tuple[HTTPRoute, ...] = ()
    #: Objects that could not be parsed, passed through for reporting.
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True)
class RoutingTable:
    routes: Mapping[tuple[str, str], Route] = field(default_factory=dict)
    #: Objects that route nothing, with the reason (unparseable, unknown apex, overridden, ...).
    rejected: tuple[Rejected, ...] = ()

    def route(self, namespace: str, service: str) -> Route | None:
        return self.routes.get((namespace, service))


EMPTY_TABLE = RoutingTable()


def build_table(observed: Observed) -> RoutingTable:
    services = {s.meta.key: s for s in observed.services}
    endpoints = _endpoints_by_service(observed.services, observed.pods)
    rejected = list(observed.rejected)

    routes_by_apex: dict[tuple[str, str], list[HTTPRoute]] = {}
    for http_route in observed.http_routes:
        attached = False
        for parent in http_route.parent_services:
            if (http_route.meta.namespace, parent) in services:
                routes_by_apex.setdefault((http_route.meta.namespace, parent), []).append(http_route)
                attached = True
        if not attached:
            reason = (
                f"no parent Service exists ({', '.join(http_route.parent_services)})"
                if http_route.parent_services
                else "no parentRef names a Service (group \"\", kind Service)"
            )
            rejected.append(_rejected(http_route.meta, reason))

    splits_by_apex: dict[tuple[str, str], list[TrafficSplit]] = {}
    for split in observed.splits:
        key = (split.meta.namespace, split.service)
        if key not in services:
            rejected.append(_rejected(split.meta, f"apex Service {split.service} does not exist"))
            continue
        splits_by_apex.setdefault(key, []).append(split)

    routes: dict[tuple[str, str], Route] = {}
    for key, service in services.items():
        if key in routes_by_apex:
            routes[key] = _http_route_route(service, routes_by_apex[key], services, endpoints)
            for split in splits_by_apex.get(key, ()):
                rejected.append(_rejected(split.meta, f"overridden by HTTPRoute on Service {service.meta.name}"))
        elif key in splits_by_apex:
            ordered = sorted(splits_by_apex[key], key=lambda s: (s.meta.created, s.meta.name))
            routes[key] = _split_route(service, ordered[0], services, endpoints)
            for other in ordered[1:]:
                rejected.append(
                    _rejected(other.meta, f"TrafficSplit {ordered[0].meta.name} is older and routes {service.meta.name}")
                )
        else:
            routes[key] = _plain_route(service, endpoints)
    return RoutingTable(routes=routes, rejected=tuple(rejected))


def carry_since(previous: RoutingTable, new: RoutingTable, now: float) -> RoutingTable:
    """``new`` with each route's ``since`` kept from ``previous`` when its configuration is the
    same, and set to ``now`` when it changed or is new."""
    routes = {}
    for key, route in new.routes.items():
        old = previous.routes.get(key)
        since = old.since if old is not None and old.signature == route.signature else now
        routes[key] = replace(route, since=since)
    return replace(new, routes=routes)


def _endpoints_by_service(services: Iterable[Service], pods: Iterable[Pod]) -> dict[tuple[str, str], tuple[Endpoint, ...]]:
    ready_by_namespace: dict[str, list[Pod]] = {}
    for pod in pods:
        if pod.ready:
            ready_by_namespace.setdefault(pod.meta.namespace, []).append(pod)
    out: dict[tuple[str, str], tuple[Endpoint, ...]] = {}
    for service in services:
        selector = service.selector
        if selector is None:
            out[service.meta.key] = ()
            continue
        selected = [
            p
            for p in ready_by_namespace.get(service.meta.namespace, ())
            if all(p.labels.get(k) == v for k, v in selector.items())
        ]
        selected.sort(key=lambda p: p.meta.name)
        out[service.meta.key] = tuple(
            Endpoint(
                namespace=p.meta.namespace,
                name=p.meta.name,
                uid=p.meta.uid,
                deployment=p.deployment,
                pod_template_hash=p.pod_template_hash,
                labels=p.labels,
            )
            for p in selected
        )
    return out


def _backend(
    namespace: str,
    name: str,
    weight: Fraction,
    services: Mapping[tuple[str, str], Service],
    endpoints: Mapping[tuple[str, str], tuple[Endpoint, ...]],
) -> Backend:
    if (namespace, name) not in services:
        return Backend(service=name, weight=weight, endpoints=(), problem=f"Service {namespace}/{name} does not exist")
    return Backend(service=name, weight=weight, endpoints=endpoints.get((namespace, name), ()))


def _plain_route(service: Service, endpoints: Mapping[tuple[str, str], tuple[Endpoint, ...]]) -> Route:
    backend = Backend(service=service.meta.name, weight=Fraction(1), endpoints=endpoints.get(service.meta.key, ()))
    return Route(
        namespace=service.meta.namespace,
        service=service.meta.name,
        sources=(Source.of(service.meta),),
        rules=(Rule(backends=(backend,)),),
        candidates=((0, CATCH_ALL),),
    )


def _split_route(
    service: Service,
    split: TrafficSplit,
    services: Mapping[tuple[str, str], Service],
    endpoints: Mapping[tuple[str, str], tuple[Endpoint, ...]],
) -> Route:
    namespace = service.meta.namespace
    backends = tuple(_backend(namespace, b.service, b.weight, services, endpoints) for b in split.backends)
    warnings = []
    if split.has_matches:
        warnings.append("spec.matches (HTTPRouteGroups) is not supported: the split applies to every request")
    return Route(
        namespace=namespace,
        service=service.meta.name,
        sources=(Source.of(split.meta),),
        rules=(Rule(backends=backends, zero_weight_status=ZERO_WEIGHT_STATUS_SPLIT),),
        candidates=((0, CATCH_ALL),),
        warnings=tuple(warnings),
    )


def _http_route_route(
    service: Service,
    http_routes: list[HTTPRoute],
    services: Mapping[tuple[str, str], Service],
    endpoints: Mapping[tuple[str, str], tuple[Endpoint, ...]],
) -> Route:
    namespace = service.meta.namespace
    # Ties between routes go to the oldest, then to "{namespace}/{name}" in alphabetical order.
    ordered = sorted(http_routes, key=lambda r: (r.meta.created, r.meta.namespace, r.meta.name))
    rules: list[Rule] = []
    keyed: list[tuple[tuple[object, ...], int, RouteMatch]] = []
    warnings: list[str] = []
    for route_rank, http_route in enumerate(ordered):
        for rule_rank, raw in enumerate(http_route.rules):
            backends = tuple(
                Backend(service=b.name, weight=b.weight, endpoints=(), problem=b.problem, problem_status=500)
                if b.problem
                else _backend(namespace, b.name, b.weight, services, endpoints)
                for b in raw.backends
            )
            if raw.has_filters:
                warnings.append(f"HTTPRoute {http_route.meta.name} rule {rule_rank}: filters are ignored")
            rule_index = len(rules)
            rules.append(Rule(backends=backends, matches=raw.matches, zero_weight_status=ZERO_WEIGHT_STATUS_HTTPROUTE))
            for match in raw.matches:
                keyed.append((_precedence(match) + (route_rank, rule_rank), rule_index, match))
        warnings.extend(f"HTTPRoute {http_route.meta.name}: parentRef {p}" for p in http_route.ignored_parents)
    keyed.sort(key=lambda item: item[0])
    return Route(
        namespace=namespace,
        service=service.meta.name,
        sources=tuple(Source.of(r.meta) for r in ordered),
        rules=tuple(rules),
        candidates=tuple((index, match) for _, index, match in keyed),
        warnings=tuple(warnings),
    )


def _precedence(match: RouteMatch) -> tuple[object, ...]:
    """Sort key of the Gateway API's match precedence: an exact path, then the longest prefix,
    then a method, then the most header matches, then the most query matches."""
    path_rank = {"Exact": 0, "PathPrefix": 1}.get(match.path_type, 2)
    prefix_length = len(match.path) if match.path_type != "RegularExpression" else 0
    return (path_rank, -prefix_length, match.method is None, -len(match.headers), -len(match.query))


def _rejected(meta: ObjectMeta, reason: str) -> Rejected:
    return Rejected(kind=meta.kind, namespace=meta.namespace, name=meta.name, reason=reason)


def route_json(route: Route) -> dict[str, Any]:
    """A route as the control API shows it."""
    rules = []
    for rule in route.rules:
        total = rule.total
        rules.append(
            {
                "matches": [m.describe() for m in rule.matches],
                "zeroWeightStatus": rule.zero_weight_status,
                "backends": [
                    {
                        "service": b.service,
                        "weight": weight_json(b.weight),
                        "percent": float(b.weight * 100 / total) if total else 0.0,
                        "endpoints": [e.name for e in b.endpoints],
                        "problem": b.problem,
                    }
                    for b in rule.backends
                ],
            }
        )
    first = route.rules[0] if route.rules else None
    return {
        "namespace": route.namespace,
        "service": route.service,
        "sources": [s.as_json() for s in route.sources],
        "since": route.since,
        # The first rule's weights: the whole story for everything the controller writes.
        "weights": {k: weight_json(v) for k, v in first.weights().items()} if first else {},
        "rules": rules,
        "warnings": list(route.warnings),
    }
