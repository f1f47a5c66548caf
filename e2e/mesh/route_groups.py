"""SMI Traffic Specs ``HTTPRouteGroup`` (``specs.smi-spec.io``), which a TrafficSplit of
v1alpha3 or v1alpha4 names in ``spec.matches`` to split only the requests of those routes.

A group lists named routes (``spec.matches[]``); a request is in a route when all of the route's
conditions hold:

* ``pathRegex``: a regular expression anchored at the start of the path (``/api`` takes
  ``/api/users``), as the traffic-specs CRD describes it;
* ``methods``: one of them, ``*`` for any (no list: any);
* ``headers``: every named header's value matches its regular expression, whole. v1alpha3 and
  v1alpha4 write a map from name to regex; v1alpha1/v1alpha2 a list of one-entry maps, also read.

A TrafficSplit's match names a whole group (``kind: HTTPRouteGroup``): a request in any of the
group's routes is split. The routes become :class:`~e2e.mesh.objects.RouteMatch` values (one per
method), so the proxy selects SMI and Gateway API rules the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from e2e.mesh.errors import ObjectError
from e2e.mesh.objects import ObjectMeta, RouteMatch, StringMatch, parse_meta


@dataclass(frozen=True)
class HTTPRouteGroup:
    meta: ObjectMeta
    #: Every route of the group, each as one or more matches (one per method).
    matches: tuple[RouteMatch, ...]
    #: The routes' names, in order, for reporting.
    route_names: tuple[str, ...] = ()


def parse_http_route_group(obj: Mapping[str, Any], api_version: str) -> HTTPRouteGroup:
    meta = parse_meta(obj, kind="HTTPRouteGroup", api_version=api_version)
    spec = obj.get("spec")
    # v1alpha1 and v1alpha2 keep ``matches`` at the top level, v1alpha3+ under ``spec``.
    raw = spec.get("matches") if isinstance(spec, Mapping) else obj.get("matches")
    if raw is None:
        raw = obj.get("matches")
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ObjectError("spec.matches is missing or not a list")
    matches: list[RouteMatch] = []
    names: list[str] = []
    for index, route in enumerate(raw):
        where = f"spec.matches[{index}]"
        if not isinstance(route, Mapping) or not isinstance(route.get("name"), str) or not route["name"]:
            raise ObjectError(f"{where} needs a name")
        names.append(route["name"])
        matches.extend(_route_matches(where, route))
    return HTTPRouteGroup(meta=meta, matches=tuple(matches), route_names=tuple(names))


def _route_matches(where: str, route: Mapping[str, Any]) -> list[RouteMatch]:
    path_regex = route.get("pathRegex")
    if path_regex is not None and not isinstance(path_regex, str):
        raise ObjectError(f"{where}.pathRegex is not a string")
    pattern = None
    if path_regex:
        try:
            # Anchored at the start only: the rest of the path may follow.
            pattern = re.compile(f"(?:{path_regex}).*", re.DOTALL)
        except re.error as exc:
            raise ObjectError(f"{where}.pathRegex: invalid regular expression {path_regex!r}: {exc}") from exc
    headers = _headers(f"{where}.headers", route.get("headers"))
    methods = route.get("methods")
    if methods is None:
        methods = ["*"]
    if not isinstance(methods, Sequence) or isinstance(methods, str) or not all(isinstance(m, str) for m in methods):
        raise ObjectError(f"{where}.methods is not a list of methods")
    wanted: list[str | None] = [None] if "*" in methods or not methods else [m.upper() for m in methods]
    return [
        RouteMatch(
            path_type="RegularExpression" if pattern else "PathPrefix",
            path=path_regex or "/",
            method=method,
            headers=headers,
            path_pattern=pattern,
        )
        for method in wanted
    ]


def _headers(where: str, raw: object) -> tuple[StringMatch, ...]:
    if raw is None:
        return ()
    pairs: list[tuple[object, object]]
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, Sequence) and not isinstance(raw, str) and all(isinstance(h, Mapping) for h in raw):
        pairs = [item for h in raw for item in h.items()]
    else:
        raise ObjectError(f"{where} is neither a map of header regexes nor a list of them")
    out = []
    for name, value in pairs:
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ObjectError(f"{where}: {name!r}: {value!r} is not a header name and value regex")
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ObjectError(f"{where}.{name}: invalid regular expression {value!r}: {exc}") from exc
        out.append(StringMatch(type="RegularExpression", name=name.lower(), value=value, pattern=pattern))
    return tuple(out)
