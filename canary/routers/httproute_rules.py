"""The pieces of an ``HTTPRoute`` a Canary's route options turn into: parentRefs, matches,
filters, timeouts and the session-affinity cookies.

Every function is pure and returns plain JSON-ready values; :mod:`canary.routers.gatewayapi`
assembles them into rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canary.domain.route_spec import HeaderModifier, MatchKind, ParentRef, RequestMatch, SessionAffinity, StringMatch
from canary.routers.gateway_durations import gateway_duration
from canary.routers.options import RouteOptions

#: Flagger's A/B examples match cookies as this request header; so does session affinity.
COOKIE_HEADER = "cookie"
SET_COOKIE_HEADER = "Set-Cookie"
# RE2 (which Gateway API implementations use) and Python agree on these being special.
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def regex_literal(text: str) -> str:
    """``text`` as a regular expression matching exactly it."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def parent_ref(ref: ParentRef) -> dict[str, Any]:
    out: dict[str, Any] = {"group": ref.group, "kind": ref.kind, "name": ref.name}
    if ref.namespace is not None:
        out["namespace"] = ref.namespace
    if ref.section_name is not None:
        out["sectionName"] = ref.section_name
    if ref.port is not None:
        out["port"] = ref.port
    return out


def string_match(name: str, match: StringMatch) -> dict[str, str]:
    """One header or query condition. The Gateway API has no prefix match for them, so a prefix
    becomes an anchored regular expression; ``^`` and ``.*`` make it mean the same whether the
    implementation matches the whole value (Envoy) or searches in it."""
    if match.kind is MatchKind.EXACT:
        return {"name": name, "type": "Exact", "value": match.value}
    if match.kind is MatchKind.PREFIX:
        return {"name": name, "type": "RegularExpression", "value": f"^{regex_literal(match.value)}.*"}
    return {"name": name, "type": "RegularExpression", "value": match.value}


def request_match(match: RequestMatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if match.headers:
        out["headers"] = [string_match(name, m) for name, m in match.headers.items()]
    if match.query_params:
        out["queryParams"] = [string_match(name, m) for name, m in match.query_params.items()]
    return out


def _header_filter(modifier: HeaderModifier) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Sorted: the API server keeps list order, so a stable order is what makes a read-back equal.
    if modifier.set:
        out["set"] = [{"name": k, "value": v} for k, v in sorted(modifier.set.items())]
    if modifier.add:
        out["add"] = [{"name": k, "value": v} for k, v in sorted(modifier.add.items())]
    if modifier.remove:
        out["remove"] = list(modifier.remove)
    return out


def rule_filters(options: RouteOptions) -> list[dict[str, Any]]:
    """The filters every rule carries: header modifiers, then the URL rewrite."""
    filters: list[dict[str, Any]] = []
    headers = options.headers
    if headers is not None and not headers.request.empty:
        filters.append({"type": "RequestHeaderModifier", "requestHeaderModifier": _header_filter(headers.request)})
    if headers is not None and not headers.response.empty:
        filters.append({"type": "ResponseHeaderModifier",
                        "responseHeaderModifier": _header_filter(headers.response)})
    rewrite = options.rewrite
    if rewrite is not None:
        spec: dict[str, Any] = {}
        if rewrite.authority is not None:
            spec["hostname"] = rewrite.authority
        if rewrite.uri is not None:
            # Flagger's rewrite.uri replaces the matched path prefix; every rule here matches the
            # default prefix "/", which ReplacePrefixMatch requires.
            spec["path"] = {"type": "ReplacePrefixMatch", "replacePrefixMatch": rewrite.uri}
        filters.append({"type": "URLRewrite", "urlRewrite": spec})
    return filters


def rule_timeouts(options: RouteOptions) -> dict[str, str]:
    out: dict[str, str] = {}
    if options.timeout is not None:
        out["request"] = gateway_duration(options.timeout, "spec.service.timeout")
    if options.backend_timeout is not None:
        out["backendRequest"] = gateway_duration(options.backend_timeout, "spec.service.backendTimeout")
    return out


def mirror_filter(service: Mapping[str, Any], percent: int | None) -> dict[str, Any]:
    """A copy of each request (or ``percent`` of them, Gateway API v1.3+) to ``service``."""
    mirror: dict[str, Any] = {"backendRef": dict(service)}
    if percent is not None and percent < 100:
        mirror["percent"] = percent
    return {"type": "RequestMirror", "requestMirror": mirror}


def cookie_match(name: str, value: str) -> dict[str, Any]:
    """A match for requests carrying the cookie ``name=value`` among any others. Anchored at both
    ends, so it means the same to implementations that match the whole header and to those that
    search in it."""
    pair = f"{regex_literal(name)}={regex_literal(value)}"
    return {"headers": [{"name": COOKIE_HEADER, "type": "RegularExpression", "value": f"^(.*;\\s*)?{pair}(;.*)?$"}]}


def set_cookie_filter(name: str, value: str, affinity: SessionAffinity) -> dict[str, Any]:
    """Responses carry ``Set-Cookie: name=value``, so the client's next requests match
    :func:`cookie_match`. ``Path=/``: the session is the whole site, not the first page's folder."""
    cookie = f"{name}={value}; Max-Age={affinity.max_age}; Path=/"
    return {"type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"add": [{"name": SET_COOKIE_HEADER, "value": cookie}]}}
