"""The routing table: a pure function of the objects the mesh has observed.

For every Service ("apex") the table says where a request addressed to it goes:

* An ``HTTPRoute`` whose ``parentRefs`` name the Service (``group: ""``, ``kind: Service``, the
  GAMMA pattern) routes it by its rules. Several such routes merge, rules ordered by the
  Gateway API's precedence. HTTPRoutes win over TrafficSplits, as in Linkerd, whose policy
  controller puts HTTPRoutes above the ServiceProfiles its SMI extension derives from splits.
  A rule carries its filters (header modifiers, mirrors, URL rewrite) and its timeout.
* Else a ``TrafficSplit`` whose ``spec.service`` is the Service splits it over the backends by
  relative weight. Of several without ``matches``, the oldest applies (the others are
  reported). A split with ``matches`` (v1alpha3+) routes only the requests of the HTTPRouteGroups
  it names, ahead of the others (oldest split first); requests of none of them follow the split
  without matches, or, when there is none, go to the apex Service's own endpoints.
* Else the Service sends requests to its own ready endpoints, as plain Kubernetes does.

A backend Service's endpoints are the ready Pods of its namespace whose labels include its
selector; a split never recurses into a backend's own split. The proxy picks a rule, a backend
by weight, then an endpoint uniformly.

North-south: an HTTPRoute with a Gateway parent routes requests whose host is one of its
``hostnames`` (any host when it lists none), whichever Gateway it names. The routes matching a
host merge across namespaces, ordered by hostname specificity and then the match precedence
(:meth:`RoutingTable.for_host`). Such a route has no namespace; its ``service`` is the host.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from fractions import Fraction
from typing import Any

from e2e.mesh.filters import NO_FILTERS, Filters, filters_json
from e2e.mesh.hostnames import normalise_host, specificity
from e2e.mesh.objects import CATCH_ALL, HTTPRoute, ObjectMeta, Pod, RouteMatch, Service, TrafficSplit
from e2e.mesh.route_groups import HTTPRouteGroup
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


@dataclass(frozen=True)
class Observed:
    """Everything the table is built from: what the watches currently hold."""

    services: tuple[Service, ...] = ()
    pods: tuple[Pod, ...] = ()
    splits: tuple[TrafficSplit, ...] = ()
    http_routes: tuple[HTTPRoute, ...] = ()
    route_groups: tuple[HTTPRouteGroup, ...] = ()
    #: Objects that could not be parsed, passed through for reporting.
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True)
class GatewayRoute:
    """An HTTPRoute attached to a Gateway, its rules resolved to backends."""

    http_route: HTTPRoute
    rules: tuple[Rule, ...]
    warnings: tuple[str, ...] = ()


#: Hosts whose north-south route is computed on demand and kept, per table; bounds a runaway.
MAX_CACHED_HOSTS = 1024


@dataclass(frozen=True)
class RoutingTable:
    routes: Mapping[tuple[str, str], Route] = field(default_factory=dict)
    #: Objects that route nothing, with the reason (unparseable, unknown apex, overridden, ...).
    rejected: tuple[Rejected, ...] = ()
    #: HTTPRoutes with a Gateway parent, oldest first (then by "namespace/name").
    gateway: tuple[GatewayRoute, ...] = ()
    #: The north-south route of every hostname a Gateway route lists by name (not wildcard).
    hosts: Mapping[str, Route] = field(default_factory=dict)
    #: When the table was installed: the ``since`` of host routes computed on demand.
    installed: float = 0.0
    _on_demand: dict[str, Route | None] = field(default_factory=dict, compare=False, repr=False)

    def route(self, namespace: str, service: str) -> Route | None:
        return self.routes.get((namespace, service))

    def for_host(self, host: str) -> Route | None:
        """The north-south route of requests sent to ``host`` (a Host header), or None when no
        Gateway route's hostnames match it."""
        name = normalise_host(host)
        route = self.hosts.get(name)
        if route is not None or not self.gateway:
            return route
        if name not in self._on_demand:
            if len(self._on_demand) >= MAX_CACHED_HOSTS:
                self._on_demand.clear()
            self._on_demand[name] = _host_route(name, self.gateway, since=self.installed)
        return self._on_demand[name]


EMPTY_TABLE = RoutingTable()


def build_table(observed: Observed) -> RoutingTable:
    services = {s.meta.key: s for s in observed.services}
    groups = {g.meta.key: g for g in observed.route_groups}
    endpoints = _endpoints_by_service(observed.services, observed.pods)
    rejected = list(observed.rejected)

    routes_by_apex: dict[tuple[str, str], list[HTTPRoute]] = {}
    gateway: list[GatewayRoute] = []
    for http_route in _oldest_first(observed.http_routes):
        attached = False
        for parent in http_route.parent_services:
            if (http_route.meta.namespace, parent) in services:
                routes_by_apex.setdefault((http_route.meta.namespace, parent), []).append(http_route)
                attached = True
        if http_route.parent_gateways:
            rules, warnings = _resolve_rules(http_route, services, endpoints)
            gateway.append(GatewayRoute(http_route=http_route, rules=rules, warnings=warnings))
            attached = True
        if not attached:
            reason = (
                f"no parent Service exists ({', '.join(http_route.parent_services)})"
                if http_route.parent_services
                else "no parentRef names a Service (group \"\", kind Service) or a Gateway"
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
            unmatched = [s for s in ordered if not s.has_matches]
            for other in unmatched[1:]:
                rejected.append(
                    _rejected(other.meta, f"TrafficSplit {unmatched[0].meta.name} is older and routes {service.meta.name}")
                )
            routes[key] = _split_route(
                service,
                unmatched[0] if unmatched else None,
                [s for s in ordered if s.has_matches],
                groups,
                services,
                endpoints,
            )
        else:
            routes[key] = _plain_route(service, endpoints)
    named_hosts = sorted({h for g in gateway for h in g.http_route.hostnames if not h.startswith("*.")})
    hosts = {}
    for host in named_hosts:
        host_route = _host_route(host, gateway, since=0.0)
        if host_route is not None:
            hosts[host] = host_route
    return RoutingTable(routes=routes, rejected=tuple(rejected), gateway=tuple(gateway), hosts=hosts)


def carry_since(previous: RoutingTable, new: RoutingTable, now: float) -> RoutingTable:
    """``new`` with each route's ``since`` kept from ``previous`` when its configuration is the
    same, and set to ``now`` when it changed or is new. Routes of hosts that no Gateway route
    names (wildcards, routes without hostnames) are computed on demand and get ``now``."""

    def carried(old: Route | None, route: Route) -> Route:
        since = old.since if old is not None and old.signature == route.signature else now
        return replace(route, since=since)

    routes = {key: carried(previous.routes.get(key), route) for key, route in new.routes.items()}
    hosts = {host: carried(previous.hosts.get(host), route) for host, route in new.hosts.items()}
    return replace(new, routes=routes, hosts=hosts, installed=now, _on_demand={})


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
        return Backend(
            service=name, weight=weight, endpoints=(), problem=f"Service {namespace}/{name} does not exist", namespace=namespace
        )
    return Backend(service=name, weight=weight, endpoints=endpoints.get((namespace, name), ()), namespace=namespace)


def _plain_route(service: Service, endpoints: Mapping[tuple[str, str], tuple[Endpoint, ...]]) -> Route:
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


def _split_route(
    service: Service,
    split: TrafficSplit | None,
    matched: list[TrafficSplit],
    groups: Mapping[tuple[str, str], HTTPRouteGroup],
    services: Mapping[tuple[str, str], Service],
    endpoints: Mapping[tuple[str, str], tuple[Endpoint, ...]],
) -> Route:
    """The route of an apex with TrafficSplits: rule 0 is the split without matches (or the
    apex's own endpoints), tried last; then one rule per split with matches, oldest first."""
    namespace = service.meta.namespace
    if split is not None:
        default = Rule(
            backends=tuple(_backend(namespace, b.service, b.weight, services, endpoints) for b in split.backends),
            zero_weight_status=ZERO_WEIGHT_STATUS_SPLIT,
        )
    else:
        default = _plain_route(service, endpoints).rules[0]
    rules = [default]
    candidates: list[tuple[int, RouteMatch]] = []
    warnings: list[str] = []
    for other in matched:
        matches: list[RouteMatch] = []
        for name in other.route_groups:
            group = groups.get((namespace, name))
            if group is None:
                warnings.append(f"TrafficSplit {other.meta.name}: HTTPRouteGroup {name} does not exist and matches nothing")
                continue
            matches.extend(group.matches)
        if other.other_matches:
            warnings.append(
                f"TrafficSplit {other.meta.name}: matches {', '.join(other.other_matches)} are not HTTPRouteGroups: ignored"
            )
        backends = tuple(_backend(namespace, b.service, b.weight, services, endpoints) for b in other.backends)
        index = len(rules)
        rules.append(Rule(backends=backends, matches=tuple(matches), zero_weight_status=ZERO_WEIGHT_STATUS_SPLIT))
        candidates.extend((index, m) for m in matches)
    candidates.append((0, CATCH_ALL))
    sources = ([Source.of(split.meta)] if split is not None else [Source.of(service.meta)]) + [
        Source.of(m.meta) for m in matched
    ]
    return Route(
        namespace=namespace,
        service=service.meta.name,
        sources=tuple(sources),
        rules=tuple(rules),
        candidates=tuple(candidates),
        warnings=tuple(warnings),
    )


def _oldest_first(http_routes: Iterable[HTTPRoute]) -> list[HTTPRoute]:
    """The Gateway API's tie-break between routes: the oldest, then "{namespace}/{name}"."""
    return sorted(http_routes, key=lambda r: (r.meta.created, r.meta.namespace, r.meta.name))


def _resolve_rules(
    http_route: HTTPRoute,
    services: Mapping[tuple[str, str], Service],
    endpoints: Mapping[tuple[str, str], tuple[Endpoint, ...]],
) -> tuple[tuple[Rule, ...], tuple[str, ...]]:
    namespace = http_route.meta.namespace
    rules: list[Rule] = []
    warnings: list[str] = []
    for rule_rank, raw in enumerate(http_route.rules):
        backends = tuple(
            replace(
                Backend(
                    service=b.name, weight=b.weight, endpoints=(), problem=b.problem, problem_status=500, namespace=namespace
                )
                if b.problem
                else _backend(namespace, b.name, b.weight, services, endpoints),
                filters=b.filters,
            )
            for b in raw.backends
        )
        mirrors = tuple(
            Mirror(
                service=m.service,
                namespace=namespace,
                fraction=m.fraction,
                endpoints=endpoints.get((namespace, m.service), ()),
                problem=m.problem
                or (None if (namespace, m.service) in services else f"Service {namespace}/{m.service} does not exist"),
            )
            for m in raw.filters.mirrors
        )
        ignored = [*raw.filters.ignored, *(t for b in raw.backends for t in b.filters.ignored)]
        if ignored:
            warnings.append(f"HTTPRoute {http_route.meta.name} rule {rule_rank}: filters {', '.join(ignored)} are ignored")
        rules.append(
            Rule(
                backends=backends,
                matches=raw.matches,
                zero_weight_status=ZERO_WEIGHT_STATUS_HTTPROUTE,
                filters=raw.filters,
                mirrors=mirrors,
                timeout=raw.timeout,
            )
        )
    return tuple(rules), tuple(warnings)


def _merged_route(
    namespace: str,
    service: str,
    ranked: list[tuple[tuple[object, ...], HTTPRoute, tuple[Rule, ...]]],
    warnings: list[str],
    *,
    host: str = "",
    since: float = 0.0,
) -> Route:
    """One route out of several HTTPRoutes' rules. ``ranked`` is in tie-break order (oldest
    first); each entry's key sorts before the match precedence (a north-south route's
    hostname specificity, empty for a Service's routes)."""
    rules: list[Rule] = []
    keyed: list[tuple[tuple[object, ...], int, RouteMatch]] = []
    for route_rank, (head, _, route_rules) in enumerate(ranked):
        for rule_rank, rule in enumerate(route_rules):
            rule_index = len(rules)
            rules.append(rule)
            for match in rule.matches:
                keyed.append((head + _precedence(match) + (route_rank, rule_rank), rule_index, match))
    keyed.sort(key=lambda item: item[0])
    return Route(
        namespace=namespace,
        service=service,
        sources=tuple(Source.of(r.meta) for _, r, _ in ranked),
        rules=tuple(rules),
        candidates=tuple((index, match) for _, index, match in keyed),
        warnings=tuple(warnings),
        host=host,
        since=since,
    )


def _http_route_route(
    service: Service,
    http_routes: list[HTTPRoute],
    services: Mapping[tuple[str, str], Service],
    endpoints: Mapping[tuple[str, str], tuple[Endpoint, ...]],
) -> Route:
    ranked: list[tuple[tuple[object, ...], HTTPRoute, tuple[Rule, ...]]] = []
    warnings: list[str] = []
    for http_route in _oldest_first(http_routes):
        rules, rule_warnings = _resolve_rules(http_route, services, endpoints)
        ranked.append(((), http_route, rules))
        warnings.extend(rule_warnings)
        warnings.extend(f"HTTPRoute {http_route.meta.name}: parentRef {p}" for p in http_route.ignored_parents)
    return _merged_route(service.meta.namespace, service.meta.name, ranked, warnings)


def _host_route(host: str, gateway: Iterable[GatewayRoute], *, since: float) -> Route | None:
    ranked: list[tuple[tuple[object, ...], HTTPRoute, tuple[Rule, ...]]] = []
    warnings: list[str] = []
    for entry in gateway:
        score = specificity(entry.http_route.hostnames, host)
        if score is None:
            continue
        ranked.append(((-score[0], -score[1]), entry.http_route, entry.rules))
        warnings.extend(entry.warnings)
    if not ranked:
        return None
    return _merged_route("", host, ranked, warnings, host=host, since=since)


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
                "timeoutSeconds": rule.timeout,
                "filters": filters_json(rule.filters),
                "mirrors": [
                    {
                        "service": m.service,
                        "percent": float(m.fraction * 100),
                        "endpoints": [e.name for e in m.endpoints],
                        "problem": m.problem,
                    }
                    for m in rule.mirrors
                ],
                "backends": [
                    {
                        "service": b.service,
                        "weight": weight_json(b.weight),
                        "percent": float(b.weight * 100 / total) if total else 0.0,
                        "endpoints": [e.name for e in b.endpoints],
                        "problem": b.problem,
                        "filters": filters_json(b.filters),
                    }
                    for b in rule.backends
                ],
            }
        )
    first = route.rules[0] if route.rules else None
    return {
        "namespace": route.namespace,
        "service": route.service,
        "host": route.host,
        "sources": [s.as_json() for s in route.sources],
        "since": route.since,
        # The first rule's weights: the whole story for everything the controller writes.
        "weights": {k: weight_json(v) for k, v in first.weights().items()} if first else {},
        "rules": rules,
        "warnings": list(route.warnings),
    }
