"""Gateway API HTTPRoute filters, parsed and applied: what a rule (or one backendRef) does to a
request on its way besides choosing where it goes.

Supported: ``RequestHeaderModifier`` and ``ResponseHeaderModifier`` (set, add, remove),
``RequestMirror`` (with ``percent`` or ``fraction``, Gateway API v1.2+), ``URLRewrite``
(``hostname``; ``path`` by ``ReplaceFullPath`` or ``ReplacePrefixMatch``). Any other filter type
(``RequestRedirect``, ``ExtensionRef``, ``CORS``) is kept by name so the route can report it as
ignored rather than pretend it applies.

Header modifiers follow the spec's examples: ``set`` replaces every value of a header, ``add``
appends to an existing value with a comma (``foo`` + ``bar`` gives ``foo,bar``), ``remove``
drops the header. Names compare without regard to case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from multidict import CIMultiDict

from e2e.mesh.errors import ObjectError

#: Types this module implements; the CRD allows a few more.
SUPPORTED = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "URLRewrite")


@dataclass(frozen=True)
class HeaderModifier:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def apply(self, headers: CIMultiDict[str]) -> None:
        for name, value in self.set:
            headers[name] = value
        for name, value in self.add:
            existing = headers.getall(name, [])
            headers[name] = ",".join([*existing, value])
        for name in self.remove:
            headers.popall(name, None)


@dataclass(frozen=True)
class MirrorRef:
    """Where a ``RequestMirror`` filter sends copies, and how many of them."""

    service: str
    #: The share of matching requests that are copied, 0..1 (1 when neither percent nor
    #: fraction is given).
    fraction: Fraction = Fraction(1)
    #: Why no copy can be delivered (not a core Service, another namespace), or None.
    problem: str | None = None


@dataclass(frozen=True)
class URLRewrite:
    hostname: str | None = None
    #: ``ReplaceFullPath`` or ``ReplacePrefixMatch``; None leaves the path alone.
    path_type: str | None = None
    path_value: str = "/"

    def path(self, path: str, matched_prefix: str | None) -> str:
        """``path`` rewritten; ``matched_prefix`` is the PathPrefix value of the match that chose
        the rule (``ReplacePrefixMatch`` is only valid with one)."""
        if self.path_type == "ReplaceFullPath":
            return self.path_value
        if self.path_type == "ReplacePrefixMatch" and matched_prefix is not None:
            # Prefixes match whole path elements, so what follows the prefix is "" or "/...";
            # trailing slashes of the prefix and of the replacement do not double up.
            prefix = matched_prefix.rstrip("/")
            rest = path[len(prefix) :] if path.startswith(prefix) else path
            return (self.path_value.rstrip("/") + rest) or "/"
        return path


@dataclass(frozen=True)
class Filters:
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    mirrors: tuple[MirrorRef, ...] = ()
    rewrite: URLRewrite | None = None
    #: Filter types present but not implemented here.
    ignored: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == NO_FILTERS


NO_FILTERS = Filters()


def filters_json(filters: Filters) -> dict[str, Any]:
    """What the control API shows of a rule's or backend's filters (mirrors are shown resolved,
    with the rule)."""
    out: dict[str, Any] = {}
    for key, modifier in (("requestHeaders", filters.request_headers), ("responseHeaders", filters.response_headers)):
        if modifier is not None:
            out[key] = {
                "set": [{"name": n, "value": v} for n, v in modifier.set],
                "add": [{"name": n, "value": v} for n, v in modifier.add],
                "remove": list(modifier.remove),
            }
    if filters.rewrite is not None:
        out["urlRewrite"] = {
            "hostname": filters.rewrite.hostname,
            "pathType": filters.rewrite.path_type,
            "path": filters.rewrite.path_value,
        }
    if filters.ignored:
        out["ignored"] = list(filters.ignored)
    return out


def parse_filters(namespace: str, where: str, raw: object) -> Filters:
    if raw is None:
        return NO_FILTERS
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ObjectError(f"{where} is not a list")
    request_headers = response_headers = None
    rewrite = None
    mirrors: list[MirrorRef] = []
    ignored: list[str] = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise ObjectError(f"{at} is not an object")
        kind = item.get("type")
        if kind == "RequestHeaderModifier":
            request_headers = _header_modifier(f"{at}.requestHeaderModifier", item.get("requestHeaderModifier"))
        elif kind == "ResponseHeaderModifier":
            response_headers = _header_modifier(f"{at}.responseHeaderModifier", item.get("responseHeaderModifier"))
        elif kind == "RequestMirror":
            mirrors.append(_mirror(namespace, f"{at}.requestMirror", item.get("requestMirror")))
        elif kind == "URLRewrite":
            rewrite = _rewrite(f"{at}.urlRewrite", item.get("urlRewrite"))
        else:
            ignored.append(str(kind))
    return Filters(
        request_headers=request_headers,
        response_headers=response_headers,
        mirrors=tuple(mirrors),
        rewrite=rewrite,
        ignored=tuple(ignored),
    )


def _header_modifier(where: str, raw: object) -> HeaderModifier:
    if not isinstance(raw, Mapping):
        raise ObjectError(f"{where} is missing")
    return HeaderModifier(
        set=_header_values(f"{where}.set", raw.get("set")),
        add=_header_values(f"{where}.add", raw.get("add")),
        remove=tuple(_names(f"{where}.remove", raw.get("remove"))),
    )


def _header_values(where: str, raw: object) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ObjectError(f"{where} is not a list")
    out = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ObjectError(f"{where}[{index}] needs a name")
        out.append((item["name"], str(item.get("value", ""))))
    return tuple(out)


def _names(where: str, raw: object) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not all(isinstance(n, str) for n in raw):
        raise ObjectError(f"{where} is not a list of header names")
    return [str(n) for n in raw]


def _mirror(namespace: str, where: str, raw: object) -> MirrorRef:
    if not isinstance(raw, Mapping):
        raise ObjectError(f"{where} is missing")
    ref = raw.get("backendRef")
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
        raise ObjectError(f"{where}.backendRef.name is missing")
    percent, fraction = raw.get("percent"), raw.get("fraction")
    if percent is not None and fraction is not None:
        raise ObjectError(f"{where}: percent and fraction are mutually exclusive")
    share = Fraction(1)
    if percent is not None:
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ObjectError(f"{where}.percent must be an integer from 0 to 100, got {percent!r}")
        share = Fraction(percent, 100)
    elif fraction is not None:
        share = _fraction(f"{where}.fraction", fraction)
    problem = None
    group, kind = ref.get("group", ""), ref.get("kind", "Service")
    if group != "" or kind != "Service":
        problem = f"mirror backendRef kind {group}/{kind} is not a core Service"
    elif ref.get("namespace", namespace) != namespace:
        problem = f"cross-namespace mirror backendRef to {ref.get('namespace')}/{ref['name']} is not permitted"
    return MirrorRef(service=ref["name"], fraction=share, problem=problem)


def _fraction(where: str, raw: object) -> Fraction:
    if not isinstance(raw, Mapping):
        raise ObjectError(f"{where} is not an object")
    numerator, denominator = raw.get("numerator"), raw.get("denominator", 100)
    if isinstance(numerator, bool) or not isinstance(numerator, int) or numerator < 0:
        raise ObjectError(f"{where}.numerator must be a non-negative integer, got {numerator!r}")
    if isinstance(denominator, bool) or not isinstance(denominator, int) or denominator < 1:
        raise ObjectError(f"{where}.denominator must be a positive integer, got {denominator!r}")
    if numerator > denominator:
        raise ObjectError(f"{where}: numerator {numerator} exceeds denominator {denominator}")
    return Fraction(numerator, denominator)


def _rewrite(where: str, raw: object) -> URLRewrite:
    if not isinstance(raw, Mapping):
        raise ObjectError(f"{where} is missing")
    hostname = raw.get("hostname")
    if hostname is not None and (not isinstance(hostname, str) or not hostname):
        raise ObjectError(f"{where}.hostname must be a non-empty string")
    path = raw.get("path")
    if path is None:
        return URLRewrite(hostname=hostname)
    if not isinstance(path, Mapping):
        raise ObjectError(f"{where}.path is not an object")
    kind = path.get("type")
    if kind == "ReplaceFullPath":
        value = path.get("replaceFullPath")
    elif kind == "ReplacePrefixMatch":
        value = path.get("replacePrefixMatch")
    else:
        raise ObjectError(f"{where}.path.type {kind!r} is not ReplaceFullPath or ReplacePrefixMatch")
    if not isinstance(value, str) or not value.startswith("/"):
        raise ObjectError(f"{where}.path: the replacement must be a path starting with '/', got {value!r}")
    return URLRewrite(hostname=hostname, path_type=kind, path_value=value)
