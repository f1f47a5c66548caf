"""What a Canary asks of its route beyond the split: Gateway API parentRefs, header changes,
rewrites, A/B conditions and session affinity (Flagger's fields, carried out by the
``gatewayapi`` router). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from canary.domain import bounds
from canary.domain.bounds import CountBound
from canary.domain.fields import integer, items, mapping, optional_integer, string_map, text
from canary.errors import SpecError

__all__ = [
    "MATCH_CONDITIONS_MAX", "HeaderModifier", "HeaderOperations", "MatchKind", "ParentRef", "RequestMatch",
    "Rewrite", "SessionAffinity", "StringMatch", "parse_headers", "parse_match", "parse_parent_ref",
    "parse_rewrite", "parse_session_affinity",
]


@dataclass(frozen=True)
class ParentRef:
    """A Gateway API parentRef: the Gateway (or Service) an HTTPRoute attaches to."""

    name: str
    namespace: str | None = None
    kind: str = "Gateway"
    group: str = "gateway.networking.k8s.io"
    section_name: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class HeaderModifier:
    set: Mapping[str, str] = field(default_factory=dict)
    add: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.set or self.add or self.remove)


@dataclass(frozen=True)
class HeaderOperations:
    request: HeaderModifier = field(default_factory=HeaderModifier)
    response: HeaderModifier = field(default_factory=HeaderModifier)


@dataclass(frozen=True)
class Rewrite:
    uri: str | None = None  # replaces the matched path prefix
    authority: str | None = None  # replaces the Host header


class MatchKind(StrEnum):
    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"


@dataclass(frozen=True)
class StringMatch:
    kind: MatchKind
    value: str


@dataclass(frozen=True)
class RequestMatch:
    """One A/B condition (Flagger's ``analysis.match[]`` item): every part must hold. Cookies are
    matched as the ``cookie`` header, as Flagger's own examples do."""

    headers: Mapping[str, StringMatch] = field(default_factory=dict)
    query_params: Mapping[str, StringMatch] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionAffinity:
    cookie_name: str
    max_age: int = 86400
    primary_cookie_name: str | None = None


_MATCH_KINDS = tuple(k.value for k in MatchKind)
#: Header and query-parameter conditions per A/B item: what one HTTPRoute match may hold.
MATCH_CONDITIONS_MAX = 16


def _string_match(value: object, path: str) -> StringMatch:
    m = mapping(value, path)
    kinds = [k for k in _MATCH_KINDS if m.get(k) is not None]
    if len(kinds) != 1 or set(m) - set(_MATCH_KINDS):
        raise SpecError(path, f"set exactly one of {', '.join(_MATCH_KINDS)}")
    return StringMatch(MatchKind(kinds[0]), text(m[kinds[0]], f"{path}.{kinds[0]}"))


def parse_match(raw: Mapping[str, Any], path: str) -> RequestMatch:
    """One ``analysis.match`` item. Flagger takes Istio's HTTPMatchRequest here; of it the
    Gateway API can say headers and query parameters, so any other part is refused by name."""
    other = sorted(set(raw) - {"headers", "queryParams"})
    if other:
        raise SpecError(f"{path}.{other[0]}", "is not supported: an A/B condition matches headers (cookies "
                                              "as the cookie header) and queryParams")
    headers = {str(k): _string_match(v, f"{path}.headers.{k}") for k, v in mapping(raw.get("headers"),
                                                                                     f"{path}.headers").items()}
    params = {str(k): _string_match(v, f"{path}.queryParams.{k}")
              for k, v in mapping(raw.get("queryParams"), f"{path}.queryParams").items()}
    if not headers and not params:
        raise SpecError(path, "set headers or queryParams")
    for part, conditions in (("headers", headers), ("queryParams", params)):
        if len(conditions) > MATCH_CONDITIONS_MAX:
            raise SpecError(f"{path}.{part}", f"has {len(conditions)} conditions; the Gateway API allows at most "
                                              f"{MATCH_CONDITIONS_MAX}")
    for name, match in params.items():
        if match.kind is MatchKind.PREFIX:
            raise SpecError(f"{path}.queryParams.{name}", "use exact or regex: the Gateway API has no prefix "
                                                          "match for query parameters")
    return RequestMatch(headers=headers, query_params=params)


def parse_session_affinity(value: object, path: str) -> SessionAffinity | None:
    if value is None:
        return None
    m = mapping(value, path)
    primary = m.get("primaryCookieName")
    cookie = text(m.get("cookieName"), f"{path}.cookieName")
    if primary is not None and text(primary, f"{path}.primaryCookieName") == cookie:
        raise SpecError(f"{path}.primaryCookieName", "must differ from cookieName")
    return SessionAffinity(
        cookie_name=cookie,
        max_age=integer(m.get("maxAge", 86400), f"{path}.maxAge", bounds.SESSION_MAX_AGE),
        primary_cookie_name=primary,
    )


def _header_modifier(value: object, path: str, remove_bound: CountBound) -> HeaderModifier:
    m = mapping(value, path)
    remove = items(m.get("remove"), f"{path}.remove", remove_bound)
    changes = {part: string_map(m.get(part), f"{path}.{part}") for part in ("set", "add")}
    for part, headers in changes.items():
        # The CRD's maxProperties says the same: what one Gateway API header filter may hold.
        if len(headers) > remove_bound.ceiling:
            raise SpecError(f"{path}.{part}", f"has {len(headers)} headers; the Gateway API allows at most "
                                              f"{remove_bound.ceiling}")
    return HeaderModifier(set=changes["set"], add=changes["add"],
                          remove=tuple(text(r, f"{path}.remove[{i}]") for i, r in enumerate(remove)))


def parse_headers(value: object, path: str) -> HeaderOperations | None:
    if value is None:
        return None
    m = mapping(value, path)
    return HeaderOperations(
        request=_header_modifier(m.get("request"), f"{path}.request", bounds.REQUEST_HEADERS_REMOVE_ITEMS),
        response=_header_modifier(m.get("response"), f"{path}.response", bounds.RESPONSE_HEADERS_REMOVE_ITEMS),
    )


def parse_rewrite(value: object, path: str) -> Rewrite | None:
    if value is None:
        return None
    m = mapping(value, path)
    if m.get("uriRegexRewrite") is not None:
        raise SpecError(f"{path}.uriRegexRewrite", "is not supported: the Gateway API rewrites a path prefix "
                                                   "(uri) or the whole path, not by regular expression")
    uri = None if m.get("uri") is None else text(m["uri"], f"{path}.uri")
    authority = None if m.get("authority") is None else text(m["authority"], f"{path}.authority")
    if uri is not None and not uri.startswith("/"):
        raise SpecError(f"{path}.uri", f"{uri!r} must start with /")
    if uri is None and authority is None:
        raise SpecError(path, "set uri, authority or both")
    return Rewrite(uri=uri, authority=authority)


def parse_parent_ref(raw: Mapping[str, Any], path: str) -> ParentRef:
    return ParentRef(
        name=text(raw.get("name"), f"{path}.name"),
        namespace=None if raw.get("namespace") is None else text(raw["namespace"], f"{path}.namespace"),
        kind=text(raw.get("kind", "Gateway"), f"{path}.kind"),
        group=str(raw.get("group", "gateway.networking.k8s.io")),
        section_name=None if raw.get("sectionName") is None else text(raw["sectionName"], f"{path}.sectionName"),
        port=optional_integer(raw, "port", path, bounds.GATEWAY_REF_PORT),
    )
