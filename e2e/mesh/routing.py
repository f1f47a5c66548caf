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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from e2e.mesh.filters import filters_json
from e2e.mesh.hostnames import normalise_host
from e2e.mesh.http_route_rules import GatewayRoute, host_route, oldest_first, resolve_rules, service_route
from e2e.mesh.objects import HTTPRoute, Pod, Service, TrafficSplit
from e2e.mesh.route_groups import HTTPRouteGroup
from e2e.mesh.routes import Endpoint, Rejected, Route, plain_route, rejection
from e2e.mesh.split_rules import split_route
from e2e.mesh.weights import weight_json


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
            self._on_demand[name] = host_route(name, self.gateway, since=self.installed)
        return self._on_demand[name]


EMPTY_TABLE = RoutingTable()


def build_table(observed: Observed) -> RoutingTable:
    services = {s.meta.key: s for s in observed.services}
    groups = {g.meta.key: g for g in observed.route_groups}
    endpoints = _endpoints_by_service(observed.services, observed.pods)
    rejected = list(observed.rejected)

    routes_by_apex: dict[tuple[str, str], list[HTTPRoute]] = {}
    gateway: list[GatewayRoute] = []
    for http_route in oldest_first(observed.http_routes):
        attached = False
        for parent in http_route.parent_services:
            if (http_route.meta.namespace, parent) in services:
                routes_by_apex.setdefault((http_route.meta.namespace, parent), []).append(http_route)
                attached = True
        if http_route.parent_gateways:
            rules, warnings = resolve_rules(http_route, services, endpoints)
            gateway.append(GatewayRoute(http_route=http_route, rules=rules, warnings=warnings))
            attached = True
        if not attached:
            reason = (
                f"no parent Service exists ({', '.join(http_route.parent_services)})"
                if http_route.parent_services
                else "no parentRef names a Service (group \"\", kind Service) or a Gateway"
            )
            rejected.append(rejection(http_route.meta, reason))

    splits_by_apex: dict[tuple[str, str], list[TrafficSplit]] = {}
    for split in observed.splits:
        key = (split.meta.namespace, split.service)
        if key not in services:
            rejected.append(rejection(split.meta, f"apex Service {split.service} does not exist"))
            continue
        splits_by_apex.setdefault(key, []).append(split)

    routes: dict[tuple[str, str], Route] = {}
    for key, service in services.items():
        if key in routes_by_apex:
            routes[key] = service_route(service, routes_by_apex[key], services, endpoints)
            for split in splits_by_apex.get(key, ()):
                rejected.append(rejection(split.meta, f"overridden by HTTPRoute on Service {service.meta.name}"))
        elif key in splits_by_apex:
            ordered = sorted(splits_by_apex[key], key=lambda s: (s.meta.created, s.meta.name))
            unmatched = [s for s in ordered if not s.has_matches]
            for other in unmatched[1:]:
                rejected.append(
                    rejection(other.meta, f"TrafficSplit {unmatched[0].meta.name} is older and routes {service.meta.name}")
                )
            routes[key] = split_route(
                service,
                unmatched[0] if unmatched else None,
                [s for s in ordered if s.has_matches],
                groups,
                services,
                endpoints,
            )
        else:
            routes[key] = plain_route(service, endpoints)
    named_hosts = sorted({h for g in gateway for h in g.http_route.hostnames if not h.startswith("*.")})
    hosts = {}
    for host in named_hosts:
        served = host_route(host, gateway, since=0.0)
        if served is not None:
            hosts[host] = served
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
                daemonset=p.daemonset,
            )
            for p in selected
        )
    return out


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
        # The first rule's weights: the whole story for a one-rule route; with A/B rules, read "rules".
        "weights": {k: weight_json(v) for k, v in first.weights().items()} if first else {},
        "rules": rules,
        "warnings": list(route.warnings),
    }
