"""The SMI Traffic Specs ``HTTPRouteGroup`` that carries a Canary's A/B conditions
(``spec.analysis.match``) for a TrafficSplit of v1alpha3 or v1alpha4, which names it in
``spec.matches``.

**Version**: each TrafficSplit version names one traffic-specs version as compatible
(``specs.smi-spec.io/v1alpha3`` for split v1alpha3, v1alpha4 for v1alpha4); the group is written
in that one. From v1alpha3 on, the routes sit under ``spec.matches`` and a route's ``headers`` is a
map from header name to a regular expression the whole value must match.

**One route per A/B item**: Flagger's items are alternatives (any one sends the request to the
canary) and the conditions inside one item must all hold; a group's routes are alternatives and
a route's headers must all hold, so the shapes line up. Each route also says ``pathRegex: .*`` and
``methods: ["*"]``: the specification leaves a route without them undefined, and matching every
path and method is what an A/B condition on headers means.

**Conditions as header regexes**: an exact value becomes the escaped value anchored at both ends,
a prefix the escaped prefix followed by ``.*``, a regex stays as written. Cookies are already the
``cookie`` header (see :class:`~canary.domain.spec.RequestMatch`). Query parameters have no place
in an HTTPRouteGroup: the factory refuses them before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canary.domain.route_spec import MatchKind, RequestMatch, StringMatch
from canary.errors import RouterError
from canary.routers.base import Companion, RouteResource, RouteTarget
from canary.routers.httproute_rules import regex_literal

GROUP = "specs.smi-spec.io"
KIND = "HTTPRouteGroup"
PLURAL = "httproutegroups"
#: TrafficSplit version -> the traffic-specs version it names as compatible. Older splits have no
#: ``matches`` at all.
SPECS_VERSION_FOR_SPLIT: Mapping[str, str] = {"v1alpha4": "v1alpha4", "v1alpha3": "v1alpha3"}
RESOURCES: tuple[RouteResource, ...] = tuple(
    RouteResource(group=GROUP, version=v, plural=PLURAL, kind=KIND) for v in SPECS_VERSION_FOR_SPLIT.values())
#: A route's name is ``<prefix><index of the analysis.match item>``.
ROUTE_NAME_PREFIX = "ab-"


def route_group_resource(split_version: str) -> RouteResource:
    specs = SPECS_VERSION_FOR_SPLIT.get(split_version)
    if specs is None:
        raise RouterError(f"TrafficSplit {split_version} has no spec.matches: A/B testing (spec.analysis.match) needs "
                          f"TrafficSplit {' or '.join(SPECS_VERSION_FOR_SPLIT)}")
    return RouteResource(group=GROUP, version=specs, plural=PLURAL, kind=KIND)


def header_regex(match: StringMatch) -> str:
    if match.kind is MatchKind.EXACT:
        return f"^{regex_literal(match.value)}$"
    if match.kind is MatchKind.PREFIX:
        return f"^{regex_literal(match.value)}.*"
    return match.value


def _route(index: int, match: RequestMatch) -> dict[str, Any]:
    if match.query_params:
        raise RouterError(f"spec.analysis.match[{index}].queryParams: an SMI HTTPRouteGroup matches headers only")
    return {
        "name": f"{ROUTE_NAME_PREFIX}{index}",
        "pathRegex": ".*",
        "methods": ["*"],
        "headers": {name: header_regex(m) for name, m in match.headers.items()},
    }


def route_group(split_version: str, target: RouteTarget) -> Companion:
    """The group named after the apex, holding one route per ``analysis.match`` item."""
    resource = route_group_resource(split_version)
    if not target.options.match:
        raise RouterError("an HTTPRouteGroup for A/B testing needs spec.analysis.match items")
    body = {
        "apiVersion": resource.api_version,
        "kind": KIND,
        "metadata": target.metadata(),
        "spec": {"matches": [_route(i, m) for i, m in enumerate(target.options.match)]},
    }
    return Companion(resource=resource, body=body)


def split_matches(target: RouteTarget) -> list[dict[str, str]]:
    """The TrafficSplit's ``spec.matches`` naming the group of :func:`route_group`."""
    return [{"kind": KIND, "name": target.apex}]
