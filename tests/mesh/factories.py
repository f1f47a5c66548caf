"""API objects as the API server returns them, for the mesh's tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from e2e.mesh.objects import parse_http_route, parse_pod, parse_service, parse_traffic_split
from e2e.mesh.objects import HTTPRoute, Pod, Service, TrafficSplit

_uids = itertools.count(1)


def meta(namespace: str, name: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "uid": f"uid-{name}-{next(_uids)}",
        "resourceVersion": "1",
        "creationTimestamp": "2025-01-01T00:00:00Z",
    }
    out.update(extra)
    return out


def service_obj(namespace: str, name: str, selector: Mapping[str, str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 9898}]}
    if selector is not None:
        spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(namespace, name), "spec": spec}


def pod_obj(
    namespace: str,
    deployment: str,
    suffix: str,
    labels: Mapping[str, str],
    *,
    annotations: Mapping[str, str] | None = None,
    ready: bool = True,
    template_hash: str = "5d8f7c9b4",
) -> dict[str, Any]:
    rs = f"{deployment}-{template_hash}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(
            namespace,
            f"{rs}-{suffix}",
            labels={**labels, "pod-template-hash": template_hash},
            annotations=dict(annotations or {}),
            ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "controller": True}],
        ),
        "spec": {"containers": [{"name": "app", "image": "podinfo"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def split_obj(
    namespace: str,
    apex: str,
    backends: Sequence[tuple[str, object]],
    *,
    version: str = "v1alpha2",
    name: str | None = None,
    created: str = "2025-01-01T00:00:00Z",
    matches: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"service": apex, "backends": [{"service": s, "weight": w} for s, w in backends]}
    if matches:
        spec["matches"] = [{"kind": "HTTPRouteGroup", "name": "ab"}]
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": meta(namespace, name or apex, generation=1, creationTimestamp=created),
        "spec": spec,
    }


def http_route_obj(
    namespace: str,
    apex: str,
    backends: Sequence[tuple[str, int | None]],
    *,
    name: str | None = None,
    version: str = "v1",
    rules: list[dict[str, Any]] | None = None,
    created: str = "2025-01-01T00:00:00Z",
) -> dict[str, Any]:
    if rules is None:
        refs = []
        for service, weight in backends:
            ref: dict[str, Any] = {"name": service, "port": 9898}
            if weight is not None:
                ref["weight"] = weight
            refs.append(ref)
        rules = [{"backendRefs": refs}]
    return {
        "apiVersion": f"gateway.networking.k8s.io/{version}",
        "kind": "HTTPRoute",
        "metadata": meta(namespace, name or apex, generation=1, creationTimestamp=created),
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": apex, "port": 9898}],
            "rules": rules,
        },
    }


# Parsed forms -----------------------------------------------------------------------------


def service(namespace: str, name: str, selector: Mapping[str, str] | None) -> Service:
    return parse_service(service_obj(namespace, name, selector))


def pod(namespace: str, deployment: str, suffix: str, labels: Mapping[str, str], **kw: Any) -> Pod:
    return parse_pod(pod_obj(namespace, deployment, suffix, labels, **kw))


def split(namespace: str, apex: str, backends: Sequence[tuple[str, object]], **kw: Any) -> TrafficSplit:
    version = kw.get("version", "v1alpha2")
    return parse_traffic_split(split_obj(namespace, apex, backends, **kw), f"split.smi-spec.io/{version}")


def http_route(namespace: str, apex: str, backends: Sequence[tuple[str, int | None]], **kw: Any) -> HTTPRoute:
    return parse_http_route(http_route_obj(namespace, apex, backends, **kw), "gateway.networking.k8s.io/v1")


def podinfo_world(namespace: str = "test") -> tuple[list[Service], list[Pod]]:
    """The objects the controller leaves for Canary ``podinfo``: apex, primary and canary
    Services, two primary Pods and two canary Pods."""
    services = [
        service(namespace, "podinfo", {"app": "podinfo-primary"}),
        service(namespace, "podinfo-primary", {"app": "podinfo-primary"}),
        service(namespace, "podinfo-canary", {"app": "podinfo"}),
    ]
    pods = [
        pod(namespace, "podinfo-primary", "aaaaa", {"app": "podinfo-primary"}, template_hash="6b7c8d9f5"),
        pod(namespace, "podinfo-primary", "bbbbb", {"app": "podinfo-primary"}, template_hash="6b7c8d9f5"),
        pod(namespace, "podinfo", "ccccc", {"app": "podinfo"}),
        pod(namespace, "podinfo", "ddddd", {"app": "podinfo"}),
    ]
    return services, pods
