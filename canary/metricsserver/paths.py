"""A request path -> what it asks for. Pure.

::

    /apis                                                       APIGroupList
    /apis/metrics.smi-spec.io                                   APIGroup
    /apis/metrics.smi-spec.io/v1alpha1                          APIResourceList
    .../v1alpha1/namespaces                                     all namespaces
    .../v1alpha1/namespaces/{name}[/edges]                      one namespace [its edges]
    .../v1alpha1/{kind}                                         every object of a kind, all namespaces
    .../v1alpha1/namespaces/{ns}/{kind}                         every object of a kind in a namespace
    .../v1alpha1/namespaces/{ns}/{kind}/{name}[/edges]          one object [its edges]
    /openapi/v2                                                 OpenAPI v2 (minimal)
    /openapi/v3                                                 OpenAPI v3 discovery
    /openapi/v3/apis/metrics.smi-spec.io/v1alpha1               OpenAPI v3 of the group-version

``{kind}`` is deployments, pods, daemonsets or statefulsets. A trailing ``/`` is ignored. Any other
path is None (404). Names are not validated here; the handlers do that.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from canary.metricsserver.resources import EDGES, GROUP, VERSION, Kind


class DiscoveryDoc(StrEnum):
    GROUP_LIST = "apis"
    GROUP = "group"
    RESOURCES = "resources"


class OpenApiDoc(StrEnum):
    V2 = "v2"
    V3_ROOT = "v3"
    V3_GROUP_VERSION = "v3-group-version"


@dataclass(frozen=True)
class Discovery:
    doc: DiscoveryDoc


@dataclass(frozen=True)
class OpenApi:
    doc: OpenApiDoc


@dataclass(frozen=True)
class ListObjects:
    kind: Kind
    #: None: every namespace (always None for ``Kind.NAMESPACES``).
    namespace: str | None


@dataclass(frozen=True)
class GetObject:
    kind: Kind
    namespace: str | None
    name: str


@dataclass(frozen=True)
class GetEdges:
    kind: Kind
    namespace: str | None
    name: str


Target = Discovery | OpenApi | ListObjects | GetObject | GetEdges

_NAMESPACED = {k.value: k for k in Kind if k.namespaced}


def parse_path(path: str) -> Target | None:
    parts = [p for p in path.rstrip("/").split("/")][1:] if path.startswith("/") else []
    if not parts or any(p == "" for p in parts):
        return None
    if parts[0] == "openapi":
        return _openapi(parts[1:])
    if parts[0] != "apis":
        return None
    rest = parts[1:]
    if not rest:
        return Discovery(DiscoveryDoc.GROUP_LIST)
    if rest[0] != GROUP:
        return None
    if len(rest) == 1:
        return Discovery(DiscoveryDoc.GROUP)
    if rest[1] != VERSION:
        return None
    return _resource(rest[2:])


def _openapi(parts: list[str]) -> OpenApi | None:
    match parts:
        case ["v2"]:
            return OpenApi(OpenApiDoc.V2)
        case ["v3"]:
            return OpenApi(OpenApiDoc.V3_ROOT)
        case ["v3", "apis", group, version] if group == GROUP and version == VERSION:
            return OpenApi(OpenApiDoc.V3_GROUP_VERSION)
    return None


def _resource(parts: list[str]) -> Target | None:
    match parts:
        case []:
            return Discovery(DiscoveryDoc.RESOURCES)
        case ["namespaces"]:
            return ListObjects(Kind.NAMESPACES, None)
        case ["namespaces", name]:
            return GetObject(Kind.NAMESPACES, None, name)
        case ["namespaces", name, "edges"]:
            return GetEdges(Kind.NAMESPACES, None, name)
        case [kind] if kind in _NAMESPACED:
            return ListObjects(_NAMESPACED[kind], None)
        case ["namespaces", namespace, kind] if kind in _NAMESPACED:
            return ListObjects(_NAMESPACED[kind], namespace)
        case ["namespaces", namespace, kind, name] if kind in _NAMESPACED:
            return GetObject(_NAMESPACED[kind], namespace, name)
        case ["namespaces", namespace, kind, name, subresource] if kind in _NAMESPACED and subresource == EDGES:
            return GetEdges(_NAMESPACED[kind], namespace, name)
    return None
