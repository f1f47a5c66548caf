"""An in-memory API server, Deployment controller and watch, behind the ``KubeApi`` surface.

The executor, the probe runner and the router directory talk to ``FakeCluster.api`` exactly as
they talk to the real ``KubeApi``: ``api.call(api.core.create_namespaced_service, ns, body)``.
Each call is checked against the real ``kubernetes`` v37 method's signature (so a wrong argument
order or a patch without ``_content_type`` fails here as it would there), recorded, and applied to
an object store with the API server's rules that the controller relies on: 404 and 409 as
``ApiException`` translated to ``NotFound``/``Conflict``, ``resourceVersion`` preconditions,
``generation`` bumps on spec changes only, merge and JSON patch semantics, the status subresource
ignoring everything but ``status``, and custom resources answering only for served versions.

After every write the object is handed to the ``ReconcilerRegistry`` the way the kopf watch would.
``tick()`` plays the Deployment and DaemonSet controllers and kwok: every workload's status
catches up with its spec, ready or not as the test toggles it. DaemonSets run one pod on each
of ``nodes`` whose labels their node selector matches.
"""

from __future__ import annotations

import copy
import inspect
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from canary.errors import ApiError, NotFound
from canary.kube.api import (
    CANARY_GROUP, CANARY_PLURAL, CANARY_VERSION, JSON_PATCH, MERGE_PATCH, KubeApi, _translate, fenced, is_write,
)
from canary.kube.fence import LeaseGuard
from canary.kube.cache import Kind, ObjectKey
from canary.kube.reconciler import ReconcilerRegistry
from canary.routers.base import Weights
from canary.routers.quantity import parse_weight

T = TypeVar("T")
StoreKey = tuple[str, str, str]  # (kind, namespace, name)

#: Custom resources the fake knows: plural.group -> kind.
CUSTOM_KINDS: Mapping[str, str] = {
    f"{CANARY_PLURAL}.{CANARY_GROUP}": "Canary",
    f"metrictemplates.{CANARY_GROUP}": "MetricTemplate",
    f"alertproviders.{CANARY_GROUP}": "AlertProvider",
    "trafficsplits.split.smi-spec.io": "TrafficSplit",
    "httproutes.gateway.networking.k8s.io": "HTTPRoute",
    # Read (never written) to learn what a Gateway's implementation supports.
    "gateways.gateway.networking.k8s.io": "Gateway",
    "gatewayclasses.gateway.networking.k8s.io": "GatewayClass",
    "traefikservices.traefik.io": "TraefikService",
    # An SMI TrafficSplit's A/B conditions (its route's companion); watched like the routes.
    "httproutegroups.specs.smi-spec.io": "HTTPRouteGroup",
    # Built in, but the controller reaches both autoscaler kinds through the custom objects API.
    "horizontalpodautoscalers.autoscaling": "HorizontalPodAutoscaler",
    "scaledobjects.keda.sh": "ScaledObject",
}
#: Kinds without a namespace; stored under the namespace "".
CLUSTER_SCOPED = frozenset({"GatewayClass"})
ROUTE_KINDS = frozenset({"TrafficSplit", "HTTPRoute", "TraefikService"})
#: Watched under ``Kind.ROUTE`` keys like the routes, by the group of each kind.
ROUTE_GROUPS: Mapping[str, str] = {
    "TrafficSplit": "split.smi-spec.io", "HTTPRoute": "gateway.networking.k8s.io", "HTTPRouteGroup": "specs.smi-spec.io",
    "TraefikService": "traefik.io",
}
_WATCHED: Mapping[str, Kind] = {
    "Deployment": Kind.DEPLOYMENT, "DaemonSet": Kind.DAEMON_SET, "Service": Kind.SERVICE, "ConfigMap": Kind.CONFIG_MAP,
    "Secret": Kind.SECRET, "MetricTemplate": Kind.METRIC_TEMPLATE, "HorizontalPodAutoscaler": Kind.HPA,
    "ScaledObject": Kind.SCALED_OBJECT,
}


@dataclass(frozen=True)
class Call:
    api: str  # core, apps, custom, apis
    method: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]

    @property
    def body(self) -> Any:
        """The request body: the last positional argument of every write."""
        return self.args[-1] if self.args else None

    def touches(self, plural: str) -> bool:
        return self.api == "custom" and plural in self.args


def _api_exception(status: int, reason: str, message: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = f'{{"kind": "Status", "message": "{message}", "code": {status}}}'
    return exc


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` removes a key, everything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: Any, ops: Sequence[Mapping[str, Any]]) -> Any:
    """RFC 6902 for the operations a controller uses: add, replace, remove, test."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in str(op["path"]).split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op["value"]:
                raise _api_exception(422, "Unprocessable Entity", f"test operation failed at {op['path']}")
        elif isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif kind == "replace":
                parent[index] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[index]
        else:
            if kind in ("replace", "remove") and last not in parent:
                raise _api_exception(422, "Unprocessable Entity", f"path {op['path']} does not exist")
            if kind == "remove":
                del parent[last]
            else:  # add on an existing member replaces it, as the RFC says
                parent[last] = copy.deepcopy(op["value"])
    return doc


class _Group:
    """One of ``core``/``apps``/``custom``/``apis``: the methods of the real client class it stands for."""

    NAME = ""
    REAL: type = object

    def __init__(self, cluster: FakeCluster) -> None:
        self._cluster = cluster


class FakeCore(_Group):
    NAME, REAL = "core", client.CoreV1Api

    def read_namespaced_config_map(self, name: str, namespace: str) -> dict[str, Any]:
        return self._cluster._read("ConfigMap", namespace, name)

    def create_namespaced_config_map(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._cluster._create("ConfigMap", namespace, body)

    def replace_namespaced_config_map(self, name: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._cluster._replace("ConfigMap", namespace, name, body)

    def read_namespaced_secret(self, name: str, namespace: str) -> dict[str, Any]:
        return self._cluster._read("Secret", namespace, name)

    def create_namespaced_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._cluster._create("Secret", namespace, body)

    def replace_namespaced_secret(self, name: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._cluster._replace("Secret", namespace, name, body)

    def read_namespaced_service(self, name: str, namespace: str) -> dict[str, Any]:
        return self._cluster._read("Service", namespace, name)

    def create_namespaced_service(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._cluster._create("Service", namespace, body)

    def patch_namespaced_service(self, name: str, namespace: str, body: Any, **kw: Any) -> dict[str, Any]:
        return self._cluster._patch("Service", namespace, name, body, kw["_content_type"])

    def create_namespaced_event(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._cluster._create("Event", namespace, body)

    def patch_namespaced_event(self, name: str, namespace: str, body: Any, **kw: Any) -> dict[str, Any]:
        return self._cluster._patch("Event", namespace, name, body, kw["_content_type"])


class FakeApps(_Group):
    NAME, REAL = "apps", client.AppsV1Api

    def read_namespaced_deployment(self, name: str, namespace: str) -> dict[str, Any]:
        return self._cluster._read("Deployment", namespace, name)

    def create_namespaced_deployment(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._cluster._create("Deployment", namespace, body)

    def patch_namespaced_deployment(self, name: str, namespace: str, body: Any, **kw: Any) -> dict[str, Any]:
        return self._cluster._patch("Deployment", namespace, name, body, kw["_content_type"])

    def read_namespaced_daemon_set(self, name: str, namespace: str) -> dict[str, Any]:
        return self._cluster._read("DaemonSet", namespace, name)

    def create_namespaced_daemon_set(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._cluster._create("DaemonSet", namespace, body)

    def patch_namespaced_daemon_set(self, name: str, namespace: str, body: Any, **kw: Any) -> dict[str, Any]:
        return self._cluster._patch("DaemonSet", namespace, name, body, kw["_content_type"])


class FakeCustom(_Group):
    NAME, REAL = "custom", client.CustomObjectsApi

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                     name: str) -> dict[str, Any]:
        kind = self._cluster._custom_kind(group, version, plural)
        return self._cluster._with_version(self._cluster._read(kind, namespace, name), group, version)

    def get_cluster_custom_object(self, group: str, version: str, plural: str, name: str) -> dict[str, Any]:
        kind = self._cluster._custom_kind(group, version, plural)
        return self._cluster._with_version(self._cluster._read(kind, "", name), group, version)

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        body: Mapping[str, Any]) -> dict[str, Any]:
        kind = self._cluster._custom_kind(group, version, plural)
        return self._cluster._create(kind, namespace, body)

    def replace_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                                         body: Mapping[str, Any]) -> dict[str, Any]:
        kind = self._cluster._custom_kind(group, version, plural)
        return self._cluster._replace(kind, namespace, name, body)

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        name: str, body: Any = None) -> dict[str, Any]:
        kind = self._cluster._custom_kind(group, version, plural)
        preconditions = getattr(body, "preconditions", None)
        return self._cluster._delete(kind, namespace, name, getattr(preconditions, "resource_version", None))

    def patch_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                                       body: Any, **kw: Any) -> dict[str, Any]:
        kind = self._cluster._custom_kind(group, version, plural)
        return self._cluster._patch(kind, namespace, name, body, kw["_content_type"])

    def patch_namespaced_custom_object_status(self, group: str, version: str, namespace: str, plural: str, name: str,
                                              body: Any, **kw: Any) -> dict[str, Any]:
        kind = self._cluster._custom_kind(group, version, plural)
        return self._cluster._patch_status(kind, namespace, name, body, kw["_content_type"])


class FakeApis(_Group):
    NAME, REAL = "apis", client.ApisApi

    def get_api_versions(self) -> client.V1APIGroupList:
        return client.V1APIGroupList(groups=[
            client.V1APIGroup(name=group, versions=[
                client.V1GroupVersionForDiscovery(group_version=f"{group}/{v}", version=v) for v in versions
            ])
            for group, versions in sorted(self._cluster.served.items()) if versions
        ])


class FakeKubeApi(KubeApi):
    """``KubeApi`` with the in-memory cluster behind it. ``get_custom`` and ``served_versions``
    are inherited, so their real code runs against the fake methods."""

    def __init__(self, cluster: FakeCluster) -> None:  # no super(): there is no ApiClient to make
        self.cluster = cluster
        self.guard = LeaseGuard.unbounded()
        self.core = FakeCore(cluster)  # type: ignore[assignment]
        self.apps = FakeApps(cluster)  # type: ignore[assignment]
        self.custom = FakeCustom(cluster)  # type: ignore[assignment]
        self.apis = FakeApis(cluster)  # type: ignore[assignment]

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        group = getattr(fn, "__self__", None)
        if not isinstance(group, _Group):
            raise AssertionError(f"KubeApi.call got {fn!r}, not a method of api.core/apps/custom/apis")
        name = fn.__name__
        real = getattr(group.REAL, name, None)
        if real is None:
            raise AssertionError(f"{group.REAL.__name__} has no method {name}")
        # The generated client would reject these calls before sending anything.
        inspect.signature(real).bind(None, *args, **kwargs)
        if name.startswith("patch_") and kwargs.get("_content_type") not in (MERGE_PATCH, JSON_PATCH):
            raise AssertionError(f"{name} without an explicit merge or JSON patch _content_type: {kwargs}")
        if is_write(fn):
            # The real fence, as KubeApi.call applies it: a refused write is never sent.
            fenced(self.guard, lambda *a, **k: None)(*args, **kwargs)
        kwargs.pop("_request_timeout", None)
        self.cluster.calls.append(Call(group.NAME, name, tuple(copy.deepcopy(args)), dict(kwargs)))
        failure = self.cluster._failures.pop(name, None)
        if failure is not None:
            raise failure
        try:
            result = fn(*args, **kwargs)
        except ApiException as exc:
            raise _translate(exc) from exc
        return copy.deepcopy(result)

    def to_dict(self, obj: object) -> dict[str, Any]:
        assert isinstance(obj, Mapping), obj
        return copy.deepcopy(dict(obj))

    async def get_raw(self, path: str) -> Mapping[str, Any]:
        self.cluster.calls.append(Call("raw", "get", (path,), {}))
        if path not in self.cluster.raw:
            raise NotFound(f"GET {path}: 404", 404)
        return copy.deepcopy(self.cluster.raw[path])


@dataclass
class FakeCluster:
    #: API group -> served versions (API discovery); canary.dev is always served.
    served: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    raw: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    objects: dict[StoreKey, dict[str, Any]] = field(default_factory=dict)
    #: Whether a workload's pods become ready at the next ``tick`` (default: yes).
    ready: dict[tuple[str, str], bool] = field(default_factory=dict)
    #: The labels of each Node, for DaemonSets' node selectors.
    nodes: list[dict[str, str]] = field(default_factory=lambda: [
        {"kubernetes.io/os": "linux", "kubernetes.io/hostname": f"node-{i}"} for i in range(3)])
    registry: ReconcilerRegistry | None = None
    #: While set, watch events queue up instead of arriving (a watch running behind);
    #: ``catch_up`` delivers them in order.
    lagging: bool = False
    _lagged: list[tuple[StoreKey, dict[str, Any] | None]] = field(default_factory=list)
    _failures: dict[str, Exception] = field(default_factory=dict)
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _uids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.served.setdefault(CANARY_GROUP, [CANARY_VERSION])
        self.served.setdefault("autoscaling", ["v1", "v2"])  # every cluster serves these
        self.api = FakeKubeApi(self)

    # --- what tests use ----------------------------------------------------------------------

    def attach(self, registry: ReconcilerRegistry) -> None:
        """Start "watching": every stored object is listed into the registry, later writes follow."""
        self.registry = registry
        for key in sorted(self.objects):
            self._emit(key)

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A write by someone else (a user, GitOps): not recorded as a controller call."""
        meta = body["metadata"]
        kind, namespace, name = body["kind"], meta.get("namespace", "default"), meta["name"]
        if kind in CLUSTER_SCOPED:
            namespace = ""
        if (kind, namespace, name) in self.objects:
            # Unconditional, like ``kubectl replace``: no resourceVersion precondition.
            desired = copy.deepcopy(dict(body))
            desired["metadata"].pop("resourceVersion", None)
            return self._replace(kind, namespace, name, desired)
        return self._create(kind, namespace, body)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._delete(kind, namespace, name)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def set_ready(self, namespace: str, name: str, ready: bool) -> None:
        self.ready[(namespace, name)] = ready

    def fail_next(self, method: str, error: Exception | None = None) -> None:
        """Make the next call of ``method`` fail (after it was recorded), like a dropped connection."""
        self._failures[method] = error or ApiError(f"{method}: injected failure", 500)

    def tick(self) -> None:
        """The workload controllers and kwok catch up: each workload's status follows its spec."""
        for key, obj in sorted(self.objects.items()):
            ready = self.ready.get((key[1], key[2]), True)
            if key[0] == "Deployment":
                status = self._deployment_status(obj, ready)
            elif key[0] == "DaemonSet":
                status = self._daemonset_status(obj, ready, self.nodes)
            else:
                continue
            if status != obj.get("status"):
                obj["status"] = status
                obj["metadata"]["resourceVersion"] = str(next(self._versions))
                self._emit(key)

    def writes(self) -> list[Call]:
        return [c for c in self.calls if not c.method.startswith(("read_", "get_"))]

    def named(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        found = [copy.deepcopy(o) for (kind, _, _), o in sorted(self.objects.items()) if kind == "Event"]
        return [e for e in found if reason is None or e["reason"] == reason]

    @staticmethod
    def route_weights(call: Call) -> Weights | None:
        """The primary/canary split a route write asked for (TrafficSplit of any version, HTTPRoute,
        TraefikService, which lists only the backends with a share)."""
        body = call.body
        if body.get("kind") == "TraefikService":
            shares = {s["name"]: s["weight"] for s in body["spec"]["weighted"]["services"]}
            return Weights(primary=shares.get("podinfo-primary", 0), canary=shares.get("podinfo-canary", 0))
        if body.get("kind") == "HTTPRoute":
            refs = body["spec"]["rules"][-1]["backendRefs"]  # the split rule is last
            return Weights(primary=refs[0]["weight"], canary=refs[1]["weight"])
        if body["spec"].get("matches"):
            # Only the named groups' requests are split (all to the canary); the rest go to the apex.
            return Weights(primary=100, canary=0, experiment=True)
        backends = body["spec"]["backends"]
        primary, canary = (parse_weight(b["weight"]) for b in backends)
        assert primary is not None and canary is not None
        total = primary + canary
        return Weights(primary=int(100 * primary / total), canary=int(100 * canary / total))

    def route_writes(self) -> list[Weights | None]:
        methods = ("create_namespaced_custom_object", "replace_namespaced_custom_object")
        return [self.route_weights(c) for c in self.calls
                if c.method in methods and c.body.get("kind") in ROUTE_KINDS]

    # --- the API server ----------------------------------------------------------------------

    def _custom_kind(self, group: str, version: str, plural: str) -> str:
        kind = CUSTOM_KINDS.get(f"{plural}.{group}")
        if kind is None or version not in self.served.get(group, []):
            raise _api_exception(404, "Not Found", "the server could not find the requested resource")
        return kind

    @staticmethod
    def _with_version(obj: dict[str, Any], group: str, version: str) -> dict[str, Any]:
        # CRDs without a conversion webhook hand back the stored object under the asked version.
        obj["apiVersion"] = f"{group}/{version}"
        return obj

    def _read(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        found = self.objects.get((kind, namespace, name))
        if found is None:
            raise _api_exception(404, "Not Found", f'{kind.lower()}s "{name}" not found')
        return copy.deepcopy(found)

    def _create(self, kind: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{next(self._uids):05x}"
        key = (kind, namespace, meta["name"])
        if key in self.objects:
            raise _api_exception(409, "Conflict", f'{kind.lower()}s "{meta["name"]}" already exists')
        if meta.get("namespace", namespace) != namespace:
            raise _api_exception(400, "Bad Request", "the namespace of the object does not match the request")
        meta.update(namespace=namespace, uid=meta.get("uid") or f"uid-{next(self._uids)}",
                    resourceVersion=str(next(self._versions)), creationTimestamp="2026-01-01T00:00:00Z")
        meta["generation"] = 1
        self._default_and_validate(kind, obj)
        if kind in ("Deployment", "DaemonSet"):
            obj["status"] = {}
        self.objects[key] = obj
        self._emit(key)
        return copy.deepcopy(obj)

    def _replace(self, kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = (kind, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise _api_exception(404, "Not Found", f'{kind.lower()}s "{name}" not found')
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise _api_exception(409, "Conflict", "the object has been modified; please apply your changes to the "
                                 "latest version and try again")
        return self._store(key, current, obj)

    @staticmethod
    def _precondition(current: Mapping[str, Any], patched: Mapping[str, Any]) -> None:
        # The API server's rule: a patch whose result carries a resourceVersion other than the
        # stored one is refused, which is how a patch states the version it was based on.
        wanted = (patched.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise _api_exception(409, "Conflict", "the object has been modified; please apply your changes to the "
                                 "latest version and try again")

    def _patch(self, kind: str, namespace: str, name: str, body: Any, content_type: str) -> dict[str, Any]:
        key = (kind, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise _api_exception(404, "Not Found", f'{kind.lower()}s "{name}" not found')
        patched = json_patch(current, body) if content_type == JSON_PATCH else merge_patch(current, body)
        self._precondition(current, patched)
        if current["metadata"].get("deletionTimestamp") and not patched["metadata"].get("finalizers"):
            # The last finalizer went: the deletion completes.
            del self.objects[key]
            self._emit(key)
            return patched
        return self._store(key, current, patched)

    def _patch_status(self, kind: str, namespace: str, name: str, body: Any, content_type: str) -> dict[str, Any]:
        key = (kind, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise _api_exception(404, "Not Found", f'{kind.lower()}s "{name}" not found')
        patched = json_patch(current, body) if content_type == JSON_PATCH else merge_patch(current, body)
        self._precondition(current, patched)
        # The status subresource persists status only; metadata and spec in the body are ignored.
        obj = copy.deepcopy(current)
        obj["status"] = patched.get("status")
        if obj["status"] is None:
            del obj["status"]
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = obj
        self._emit(key)
        return copy.deepcopy(obj)

    def _store(self, key: StoreKey, current: Mapping[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        old_meta = current["metadata"]
        for immutable in ("uid", "creationTimestamp", "namespace", "name"):
            meta[immutable] = old_meta[immutable]
        meta["resourceVersion"] = str(next(self._versions))
        changed_spec = {k: v for k, v in obj.items() if k not in ("metadata", "status")} != \
            {k: v for k, v in current.items() if k not in ("metadata", "status")}
        meta["generation"] = old_meta.get("generation", 1) + (1 if changed_spec else 0)
        if "status" in current:
            obj["status"] = copy.deepcopy(current["status"])  # status is its own subresource
        self._default_and_validate(key[0], obj)
        self.objects[key] = obj
        self._emit(key)
        return copy.deepcopy(obj)

    def _delete(self, kind: str, namespace: str, name: str, version: str | None = None) -> dict[str, Any]:
        key = (kind, namespace, name)
        if key not in self.objects:
            raise _api_exception(404, "Not Found", f'{kind.lower()}s "{name}" not found')
        if version and version != self.objects[key]["metadata"]["resourceVersion"]:
            raise _api_exception(409, "Conflict", "Precondition failed: UID or ResourceVersion in precondition does "
                                 "not match the object")
        meta = self.objects[key]["metadata"]
        if meta.get("finalizers"):
            # Finalizers hold the object: it is marked for deletion until the last one is removed.
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
                meta["resourceVersion"] = str(next(self._versions))
                self._emit(key)
            return copy.deepcopy(self.objects[key])
        del self.objects[key]
        self._emit(key)
        return {"kind": "Status", "status": "Success"}

    @staticmethod
    def _default_and_validate(kind: str, obj: dict[str, Any]) -> None:
        """The defaults and validation rules of the API server that the controller can trip over."""
        spec = obj.get("spec") or {}
        if kind == "Deployment":
            spec.setdefault("replicas", 1)
        if kind == "DaemonSet" and "replicas" in spec:
            raise _api_exception(400, "Bad Request", 'strict decoding error: unknown field "spec.replicas"')
        if kind in ("Deployment", "DaemonSet"):
            selector = (spec.get("selector") or {}).get("matchLabels") or {}
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                raise _api_exception(422, "Unprocessable Entity",
                                     "spec.template.metadata.labels: `selector` does not match template `labels`")
        if kind == "Service":
            ports = spec.get("ports") or []
            for port in ports:
                port.setdefault("targetPort", port.get("port"))
                port.setdefault("protocol", "TCP")
            names = [p.get("name") for p in ports]
            if len(ports) > 1 and (None in names or "" in names or len(set(names)) != len(names)):
                raise _api_exception(422, "Unprocessable Entity",
                                     "spec.ports: every port needs a unique name when there is more than one")

    @staticmethod
    def _deployment_status(obj: Mapping[str, Any], ready: bool) -> dict[str, Any]:
        want = int(obj["spec"].get("replicas", 1))
        status: dict[str, Any] = {"observedGeneration": obj["metadata"]["generation"]}
        counts = {"replicas": want, "updatedReplicas": want, "readyReplicas": want if ready else 0,
                  "availableReplicas": want if ready else 0, "unavailableReplicas": 0 if ready else want}
        # The API server omits zero counts (omitempty), so "absent" must read as zero.
        status.update({k: v for k, v in counts.items() if v})
        return status

    @staticmethod
    def _daemonset_status(obj: Mapping[str, Any], ready: bool, nodes: Sequence[Mapping[str, str]]) -> dict[str, Any]:
        node_selector = ((obj["spec"].get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
        want = sum(1 for labels in nodes if all(labels.get(k) == v for k, v in node_selector.items()))
        status: dict[str, Any] = {"observedGeneration": obj["metadata"]["generation"]}
        counts = {"desiredNumberScheduled": want, "currentNumberScheduled": want, "updatedNumberScheduled": want,
                  "numberReady": want if ready else 0, "numberAvailable": want if ready else 0,
                  "numberUnavailable": 0 if ready else want}
        status.update({k: v for k, v in counts.items() if v})
        return status

    # --- the watch ---------------------------------------------------------------------------

    def catch_up(self) -> None:
        """The lagging watch delivers what it held back, in order."""
        self.lagging = False
        held, self._lagged = self._lagged, []
        for key, view in held:
            self._deliver(key, view)

    def _emit(self, key: StoreKey) -> None:
        if self.registry is None:
            return
        body = self.objects.get(key)
        view = copy.deepcopy(body) if body is not None else None
        if self.lagging:
            self._lagged.append((key, view))
        else:
            self._deliver(key, view)

    def _deliver(self, key: StoreKey, view: dict[str, Any] | None) -> None:
        assert self.registry is not None
        kind, namespace, name = key
        if kind == "Canary":
            if view is not None:
                self.registry.canary_changed(ObjectKey(Kind.CANARY, namespace, name), view)
        elif kind in ROUTE_GROUPS:
            group = (view or {}).get("apiVersion", "").split("/")[0] or ROUTE_GROUPS[kind]
            self.registry.object_changed(ObjectKey.route(group, namespace, name), view)
        elif kind in _WATCHED:
            self.registry.object_changed(ObjectKey(_WATCHED[kind], namespace, name), view)
