"""Routes out of SMI TrafficSplits: the split without ``matches`` (the oldest, when several)
and every split whose ``matches`` name HTTPRouteGroups, for one apex Service."""

from __future__ import annotations

from collections.abc import Mapping

from e2e.mesh.objects import CATCH_ALL, RouteMatch, Service, TrafficSplit
from e2e.mesh.route_groups import HTTPRouteGroup
from e2e.mesh.routes import (
    ZERO_WEIGHT_STATUS_SPLIT,
    EndpointsByService,
    Route,
    Rule,
    ServicesByKey,
    Source,
    plain_route,
    resolve_backend,
)


def split_route(
    service: Service,
    split: TrafficSplit | None,
    matched: list[TrafficSplit],
    groups: Mapping[tuple[str, str], HTTPRouteGroup],
    services: ServicesByKey,
    endpoints: EndpointsByService,
) -> Route:
    """The route of an apex with TrafficSplits: rule 0 is the split without matches (or the
    apex's own endpoints), tried last; then one rule per split with matches, oldest first."""
    namespace = service.meta.namespace
    if split is not None:
        default = Rule(
            backends=tuple(resolve_backend(namespace, b.service, b.weight, services, endpoints) for b in split.backends),
            zero_weight_status=ZERO_WEIGHT_STATUS_SPLIT,
        )
    else:
        default = plain_route(service, endpoints).rules[0]
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
        backends = tuple(resolve_backend(namespace, b.service, b.weight, services, endpoints) for b in other.backends)
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
