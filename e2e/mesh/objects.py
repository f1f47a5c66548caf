"""The API objects the mesh reads, parsed from their JSON into the few fields it uses.

Parsing happens once, in the watch thread, so the event loop only ever sees these typed values.
An object the mesh cannot use raises :class:`ObjectError`: a real mesh would refuse it the same
way (Linkerd's SMI adaptor cannot decode a TrafficSplit with an unreadable weight), and the
control API lists it as rejected, with the reason, instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from e2e.mesh.errors import ObjectError as ObjectError  # re-exported: callers import it from here
from e2e.mesh.durations import parse_gateway_duration
from e2e.mesh.filters import NO_FILTERS, Filters, parse_filters
from e2e.mesh.weights import WeightError, parse_httproute_weight, parse_split_weight


@dataclass(frozen=True)
class ObjectMeta:
    kind: str
    api_version: str
    namespace: str
    name: str
    uid: str = ""
    generation: int | None = None
    resource_version: str = ""
    #: RFC 3339 text; compares correctly as a string, which is all ordering needs.
    created: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class Service:
    meta: ObjectMeta
    #: ``None`` for a Service without a selector: Kubernetes gives it no endpoints of its own.
    selector: Mapping[str, str] | None


@dataclass(frozen=True)
class Pod:
    meta: ObjectMeta
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    ready: bool
    #: The owning Deployment, "" when the Pod has none (a bare Pod, a StatefulSet's Pod, ...).
    deployment: str
    pod_template_hash: str = ""
    #: The owning DaemonSet, "" when there is none.
    daemonset: str = ""


@dataclass(frozen=True)
class SplitBackend:
    service: str
    weight: Fraction


@dataclass(frozen=True)
class TrafficSplit:
    meta: ObjectMeta
    service: str
    backends: tuple[SplitBackend, ...]
    #: v1alpha3+ ``matches``: names of the HTTPRouteGroups whose requests this split routes.
    route_groups: tuple[str, ...] = ()
    #: ``matches`` entries of another kind (TCPRoute, ...), which route nothing here.
    other_matches: tuple[str, ...] = ()

    @property
    def has_matches(self) -> bool:
        return bool(self.route_groups or self.other_matches)


@dataclass(frozen=True)
class StringMatch:
    """One header or query-parameter condition of an HTTPRoute match."""

    type: str  # Exact | RegularExpression
    name: str
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, actual: str | None) -> bool:
        if actual is None:
            return False
        if self.pattern is not None:
            return self.pattern.fullmatch(actual) is not None
        return actual == self.value


@dataclass(frozen=True)
class RouteMatch:
    """One ``rules[].matches[]`` entry; its conditions must all hold."""

    path_type: str = "PathPrefix"  # Exact | PathPrefix | RegularExpression
    path: str = "/"
    method: str | None = None
    headers: tuple[StringMatch, ...] = ()
    query: tuple[StringMatch, ...] = ()
    path_pattern: re.Pattern[str] | None = None

    @property
    def catch_all(self) -> bool:
        return (
            self.path_type == "PathPrefix"
            and self.path == "/"
            and self.method is None
            and not self.headers
            and not self.query
        )

    def matches(self, method: str, path: str, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        if self.method is not None and method != self.method:
            return False
        if not self._path_matches(path):
            return False
        # Header names are case-insensitive; callers pass them lower-cased.
        if any(not h.matches(headers.get(h.name.lower())) for h in self.headers):
            return False
        return all(q.matches(query.get(q.name)) for q in self.query)

    def _path_matches(self, path: str) -> bool:
        if self.path_type == "Exact":
            return path == self.path
        if self.path_type == "RegularExpression":
            return self.path_pattern is not None and self.path_pattern.fullmatch(path) is not None
        # PathPrefix matches whole path elements: /foo matches /foo and /foo/bar, not /foobar.
        prefix = self.path.rstrip("/")
        return prefix == "" or path == prefix or path.startswith(prefix + "/")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": {"type": self.path_type, "value": self.path}}
        if self.method:
            out["method"] = self.method
        if self.headers:
            out["headers"] = [{"type": h.type, "name": h.name, "value": h.value} for h in self.headers]
        if self.query:
            out["queryParams"] = [{"type": q.type, "name": q.name, "value": q.value} for q in self.query]
        return out


CATCH_ALL = RouteMatch()


@dataclass(frozen=True)
class BackendRef:
    name: str
    weight: Fraction
    #: Why no request can be sent to this backend (Gateway API: such requests get a 500).
    problem: str | None = None
    #: Filters of this backendRef alone, applied after the rule's.
    filters: Filters = NO_FILTERS


@dataclass(frozen=True)
class RouteRule:
    matches: tuple[RouteMatch, ...] = (CATCH_ALL,)
    backends: tuple[BackendRef, ...] = ()
    filters: Filters = NO_FILTERS
    #: Seconds a request may take before the proxy answers 504 (the shorter of
    #: ``timeouts.request`` and ``timeouts.backendRequest``: without retries they coincide);
    #: None: no limit.
    timeout: float | None = None


@dataclass(frozen=True)
class HTTPRoute:
    meta: ObjectMeta
    #: Names of the Services in the route's own namespace that it attaches to (GAMMA).
    parent_services: tuple[str, ...]
    rules: tuple[RouteRule, ...]
    ignored_parents: tuple[str, ...] = field(default=())
    #: Gateways it attaches to ("namespace/name"). The mesh watches no Gateway: any Gateway
    #: parent means "route requests sent to ``hostnames``" (north-south).
    parent_gateways: tuple[str, ...] = ()
    #: ``spec.hostnames``, lower-cased; used only with Gateway parents, as GAMMA ignores them.
    hostnames: tuple[str, ...] = ()


# --- parsing -------------------------------------------------------------------------------


def parse_meta(obj: Mapping[str, Any], *, kind: str, api_version: str) -> ObjectMeta:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise ObjectError(f"{kind} without metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ObjectError(f"{kind} without metadata.name")
    namespace = meta.get("namespace")
    generation = meta.get("generation")
    return ObjectMeta(
        kind=kind,
        api_version=str(obj.get("apiVersion") or api_version),
        namespace=namespace if isinstance(namespace, str) else "",
        name=name,
        uid=str(meta.get("uid") or ""),
        generation=generation if isinstance(generation, int) and not isinstance(generation, bool) else None,
        resource_version=str(meta.get("resourceVersion") or ""),
        created=str(meta.get("creationTimestamp") or ""),
    )


def parse_service(obj: Mapping[str, Any], api_version: str = "v1") -> Service:
    meta = parse_meta(obj, kind="Service", api_version=api_version)
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        spec = {}
    selector = spec.get("selector")
    if spec.get("type") == "ExternalName" or not isinstance(selector, Mapping) or not selector:
        return Service(meta=meta, selector=None)
    return Service(meta=meta, selector={str(k): str(v) for k, v in selector.items()})


def parse_pod(obj: Mapping[str, Any], api_version: str = "v1") -> Pod:
    meta = parse_meta(obj, kind="Pod", api_version=api_version)
    raw_meta = obj.get("metadata") or {}
    labels = _string_map(raw_meta.get("labels"))
    annotations = _string_map(raw_meta.get("annotations"))
    status = obj.get("status") or {}
    ready = (
        raw_meta.get("deletionTimestamp") is None
        and isinstance(status, Mapping)
        and status.get("phase") in (None, "Running")
        and _condition_true(status.get("conditions"), "Ready")
    )
    template_hash = labels.get("pod-template-hash", "")
    return Pod(
        meta=meta,
        labels=labels,
        annotations=annotations,
        ready=ready,
        deployment=owning_deployment(raw_meta.get("ownerReferences"), template_hash),
        pod_template_hash=template_hash,
        daemonset=owning_daemonset(raw_meta.get("ownerReferences")),
    )


def owning_daemonset(owner_refs: object) -> str:
    """The DaemonSet that owns a Pod (directly: no ReplicaSet in between), "" when none does."""
    if not isinstance(owner_refs, Sequence):
        return ""
    for ref in owner_refs:
        if isinstance(ref, Mapping) and ref.get("kind") == "DaemonSet" and ref.get("controller") is not False:
            name = ref.get("name")
            if isinstance(name, str):
                return name
    return ""


def owning_deployment(owner_refs: object, pod_template_hash: str) -> str:
    """The Deployment that owns a Pod through its ReplicaSet, "" when there is none.

    The Deployment controller names each ReplicaSet ``<deployment>-<pod-template-hash>`` and
    labels its Pods with that hash, so the name alone answers the question: no ReplicaSet has to
    be fetched or watched. A ReplicaSet whose name does not end in the Pod's hash was not made
    by a Deployment.
    """
    if not isinstance(owner_refs, Sequence) or not pod_template_hash:
        return ""
    for ref in owner_refs:
        if not isinstance(ref, Mapping) or ref.get("kind") != "ReplicaSet" or ref.get("controller") is False:
            continue
        name = ref.get("name")
        suffix = "-" + pod_template_hash
        if isinstance(name, str) and name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return ""


def parse_traffic_split(obj: Mapping[str, Any], api_version: str) -> TrafficSplit:
    meta = parse_meta(obj, kind="TrafficSplit", api_version=api_version)
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise ObjectError("spec is missing")
    service = spec.get("service")
    if not isinstance(service, str) or not service:
        raise ObjectError("spec.service is missing")
    raw_backends = spec.get("backends")
    if not isinstance(raw_backends, Sequence) or isinstance(raw_backends, str) or not raw_backends:
        raise ObjectError("spec.backends is missing or empty")
    backends = []
    for index, raw in enumerate(raw_backends):
        if not isinstance(raw, Mapping):
            raise ObjectError(f"spec.backends[{index}] is not an object")
        name = raw.get("service")
        if not isinstance(name, str) or not name:
            raise ObjectError(f"spec.backends[{index}].service is missing")
        try:
            weight = parse_split_weight(raw.get("weight"))
        except WeightError as exc:
            raise ObjectError(f"spec.backends[{index}].weight: {exc}") from exc
        backends.append(SplitBackend(service=name, weight=weight))
    groups, others = _split_matches(spec.get("matches"))
    return TrafficSplit(meta=meta, service=service, backends=tuple(backends), route_groups=groups, other_matches=others)


def _split_matches(raw: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if raw is None:
        return (), ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ObjectError("spec.matches is not a list")
    groups: list[str] = []
    others: list[str] = []
    for index, ref in enumerate(raw):
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
            raise ObjectError(f"spec.matches[{index}] needs a name")
        if ref.get("kind", "HTTPRouteGroup") == "HTTPRouteGroup":
            groups.append(ref["name"])
        else:
            others.append(f"{ref.get('kind')} {ref['name']}")
    return tuple(groups), tuple(others)


def parse_http_route(obj: Mapping[str, Any], api_version: str) -> HTTPRoute:
    meta = parse_meta(obj, kind="HTTPRoute", api_version=api_version)
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise ObjectError("spec is missing")
    parents, gateways, ignored = _parents(meta.namespace, spec.get("parentRefs"))
    raw_rules = spec.get("rules")
    if raw_rules is None:
        # The CRD defaults rules to one rule matching everything, with no backend.
        raw_rules = [{}]
    if not isinstance(raw_rules, Sequence) or isinstance(raw_rules, str):
        raise ObjectError("spec.rules is not a list")
    rules = tuple(_parse_rule(meta.namespace, index, raw) for index, raw in enumerate(raw_rules))
    return HTTPRoute(
        meta=meta,
        parent_services=parents,
        rules=rules,
        ignored_parents=ignored,
        parent_gateways=gateways,
        hostnames=_hostnames(spec.get("hostnames")),
    )


def _hostnames(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not all(isinstance(h, str) and h for h in raw):
        raise ObjectError("spec.hostnames is not a list of hostnames")
    return tuple(str(h).lower() for h in raw)


def _parents(namespace: str, raw: object) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(Service parents, Gateway parents as "namespace/name", ignored parents with the reason)."""
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return (), (), ()
    parents: list[str] = []
    gateways: list[str] = []
    ignored: list[str] = []
    for ref in raw:
        if not isinstance(ref, Mapping):
            continue
        name = str(ref.get("name") or "")
        group = ref.get("group", "gateway.networking.k8s.io")
        kind = ref.get("kind", "Gateway")
        # A parentRef's group and kind default to the Gateway API's Gateway: only an explicit
        # "" (core) with kind Service attaches the route to a Service.
        if group == "gateway.networking.k8s.io" and kind == "Gateway":
            gateway = f"{ref.get('namespace', namespace)}/{name}"
            if name and gateway not in gateways:
                gateways.append(gateway)
            continue
        if group != "" or kind != "Service":
            ignored.append(f"{kind} {name}: neither a Service nor a Gateway parent")
            continue
        if ref.get("namespace", namespace) != namespace:
            # A consumer route for another namespace's Service applies only to that namespace's
            # clients; the simulated clients live nowhere, so it never applies.
            ignored.append(f"Service {ref.get('namespace')}/{name}: consumer routes are not supported")
            continue
        if name and name not in parents:
            parents.append(name)
    return tuple(parents), tuple(gateways), tuple(ignored)


def _parse_rule(namespace: str, index: int, raw: object) -> RouteRule:
    where = f"spec.rules[{index}]"
    if not isinstance(raw, Mapping):
        raise ObjectError(f"{where} is not an object")
    raw_matches = raw.get("matches")
    if raw_matches is None or raw_matches == []:
        matches: tuple[RouteMatch, ...] = (CATCH_ALL,)
    elif isinstance(raw_matches, Sequence) and not isinstance(raw_matches, str):
        matches = tuple(_parse_match(f"{where}.matches[{i}]", m) for i, m in enumerate(raw_matches))
    else:
        raise ObjectError(f"{where}.matches is not a list")
    raw_refs = raw.get("backendRefs") or []
    if not isinstance(raw_refs, Sequence) or isinstance(raw_refs, str):
        raise ObjectError(f"{where}.backendRefs is not a list")
    backends = tuple(_parse_backend_ref(namespace, f"{where}.backendRefs[{i}]", r) for i, r in enumerate(raw_refs))
    return RouteRule(
        matches=matches,
        backends=backends,
        filters=parse_filters(namespace, f"{where}.filters", raw.get("filters")),
        timeout=_timeout(f"{where}.timeouts", raw.get("timeouts")),
    )


def _timeout(where: str, raw: object) -> float | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ObjectError(f"{where} is not an object")
    limits = [
        seconds
        for seconds in (
            parse_gateway_duration(f"{where}.request", raw.get("request")),
            parse_gateway_duration(f"{where}.backendRequest", raw.get("backendRequest")),
        )
        if seconds is not None
    ]
    return min(limits) if limits else None


def _parse_match(where: str, raw: object) -> RouteMatch:
    if not isinstance(raw, Mapping):
        raise ObjectError(f"{where} is not an object")
    path = raw.get("path") or {}
    if not isinstance(path, Mapping):
        raise ObjectError(f"{where}.path is not an object")
    path_type = str(path.get("type", "PathPrefix"))
    path_value = str(path.get("value", "/"))
    if path_type not in ("Exact", "PathPrefix", "RegularExpression"):
        raise ObjectError(f"{where}.path.type {path_type!r} is not Exact, PathPrefix or RegularExpression")
    pattern = _compile(f"{where}.path.value", path_value) if path_type == "RegularExpression" else None
    method = raw.get("method")
    return RouteMatch(
        path_type=path_type,
        path=path_value,
        method=str(method).upper() if method else None,
        headers=_string_matches(f"{where}.headers", raw.get("headers"), lower_names=True),
        query=_string_matches(f"{where}.queryParams", raw.get("queryParams"), lower_names=False),
        path_pattern=pattern,
    )


def _string_matches(where: str, raw: object, *, lower_names: bool) -> tuple[StringMatch, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ObjectError(f"{where} is not a list")
    out: list[StringMatch] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ObjectError(f"{where}[{index}] needs a name")
        # The spec: of entries with equivalent names only the first is considered.
        if any(m.name.lower() == item["name"].lower() if lower_names else m.name == item["name"] for m in out):
            continue
        kind = str(item.get("type", "Exact"))
        value = str(item.get("value", ""))
        if kind not in ("Exact", "RegularExpression"):
            raise ObjectError(f"{where}[{index}].type {kind!r} is not Exact or RegularExpression")
        name = item["name"].lower() if lower_names else item["name"]
        pattern = _compile(f"{where}[{index}].value", value) if kind == "RegularExpression" else None
        out.append(StringMatch(type=kind, name=name, value=value, pattern=pattern))
    return tuple(out)


def _parse_backend_ref(namespace: str, where: str, raw: object) -> BackendRef:
    if not isinstance(raw, Mapping):
        raise ObjectError(f"{where} is not an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ObjectError(f"{where}.name is missing")
    try:
        weight = parse_httproute_weight(raw.get("weight"))
    except WeightError as exc:
        raise ObjectError(f"{where}.weight: {exc}") from exc
    problem = None
    group, kind = raw.get("group", ""), raw.get("kind", "Service")
    if group != "" or kind != "Service":
        problem = f"backendRef kind {group}/{kind} is not a core Service"
    elif raw.get("namespace", namespace) != namespace:
        # Would need a ReferenceGrant, which the mesh does not watch.
        problem = f"cross-namespace backendRef to {raw.get('namespace')}/{name} is not permitted"
    return BackendRef(
        name=name, weight=weight, problem=problem, filters=parse_filters(namespace, f"{where}.filters", raw.get("filters"))
    )


def _compile(where: str, text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise ObjectError(f"{where}: invalid regular expression {text!r}: {exc}") from exc


def _string_map(raw: object) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): str(v) for k, v in raw.items()}


def _condition_true(conditions: object, kind: str) -> bool:
    if not isinstance(conditions, Sequence):
        return False
    return any(isinstance(c, Mapping) and c.get("type") == kind and c.get("status") == "True" for c in conditions)
