"""Routes out of Gateway API HTTPRoutes: the rules of the routes attached to one Service
(GAMMA) or serving one host (attached to a Gateway), merged and ordered by the Gateway API's
precedence. Across all the rules that apply, a match is tried before another when it has, in
this order: (north-south only) more characters in a matching non-wildcard hostname, then in a
matching hostname; an Exact path; a longer path prefix; a method; more header matches; more
query-parameter matches. Ties go to the oldest route, then to "{namespace}/{name}" in
alphabetical order, then to the first rule and match in the route's own order. A rule without
matches matches every request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from e2e.mesh.hostnames import specificity
from e2e.mesh.objects import HTTPRoute, RouteMatch, Service
from e2e.mesh.routes import (
    ZERO_WEIGHT_STATUS_HTTPROUTE,
    Backend,
    EndpointsByService,
    Mirror,
    Route,
    Rule,
    ServicesByKey,
    Source,
    resolve_backend,
)


@dataclass(frozen=True)
class GatewayRoute:
    """An HTTPRoute attached to a Gateway, its rules resolved to backends."""

    http_route: HTTPRoute
    rules: tuple[Rule, ...]
    warnings: tuple[str, ...] = ()


def oldest_first(http_routes: Iterable[HTTPRoute]) -> list[HTTPRoute]:
    """The Gateway API's tie-break between routes: the oldest, then "{namespace}/{name}"."""
    return sorted(http_routes, key=lambda r: (r.meta.created, r.meta.namespace, r.meta.name))


def resolve_rules(
    http_route: HTTPRoute,
    services: ServicesByKey,
    endpoints: EndpointsByService,
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
                else resolve_backend(namespace, b.name, b.weight, services, endpoints),
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


def service_route(
    service: Service,
    http_routes: list[HTTPRoute],
    services: ServicesByKey,
    endpoints: EndpointsByService,
) -> Route:
    ranked: list[tuple[tuple[object, ...], HTTPRoute, tuple[Rule, ...]]] = []
    warnings: list[str] = []
    for http_route in oldest_first(http_routes):
        rules, rule_warnings = resolve_rules(http_route, services, endpoints)
        ranked.append(((), http_route, rules))
        warnings.extend(rule_warnings)
        warnings.extend(f"HTTPRoute {http_route.meta.name}: parentRef {p}" for p in http_route.ignored_parents)
    return _merged_route(service.meta.namespace, service.meta.name, ranked, warnings)


def host_route(host: str, gateway: Iterable[GatewayRoute], *, since: float) -> Route | None:
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
