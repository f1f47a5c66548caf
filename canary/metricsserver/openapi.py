"""Minimal OpenAPI documents, so that the kube-aggregator has something to merge. Pure.

The aggregator downloads ``/openapi/v3`` (and, for the merged v2 document, ``/openapi/v2``) from
every APIService. It tolerates a 404 (availability does not depend on it), but then the
kube-apiserver logs an "Unhandled Error ... failed to download" with rate-limited retries for as
long as the APIService exists. Serving small valid documents keeps its log clean: the schemas of
``TrafficMetrics`` and ``TrafficMetricsList`` (enough for ``kubectl explain``), and no paths.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from canary.metricsserver.resources import GROUP, GROUP_VERSION, KIND, LIST_KIND, VERSION

V3_PATH = f"apis/{GROUP_VERSION}"
_PREFIX = "io.smi-spec.metrics.v1alpha1"

JsonObject = dict[str, Any]


def _reference(description: str = "An ObjectReference: kind, namespace (if namespaced) and name.") -> JsonObject:
    return {"type": "object", "description": description,
            "properties": {"kind": {"type": "string"}, "namespace": {"type": "string"}, "name": {"type": "string"}}}


def _gvk(kind: str) -> list[JsonObject]:
    return [{"group": GROUP, "version": VERSION, "kind": kind}]


def _traffic_metrics(*, v3: bool) -> JsonObject:
    peer = _reference("the peer; null means all traffic the resource received")
    if v3:  # "nullable" is an OpenAPI 3 keyword; Swagger 2.0 has no way to say it
        peer["nullable"] = True
    metric = {
        "type": "object",
        "required": ["name", "value"],
        "properties": {
            "name": {"type": "string", "description": "p99_response_latency, p90_response_latency, "
                                                      "p50_response_latency, success_count or failure_count"},
            "unit": {"type": "string", "description": "ms for latencies; absent for counts"},
            "value": {"type": "string", "description": "a Kubernetes quantity, e.g. 73492m"},
        },
    }
    return {
        "type": "object",
        "description": "Traffic of one object (or between an object and a peer) over a window.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "resource": _reference(),
            "edge": {"type": "object", "properties": {
                "direction": {"type": "string", "enum": ["from", "to"]},
                "resource": peer,
            }},
            "timestamp": {"type": "string", "format": "date-time"},
            "window": {"type": "string"},
            "metrics": {"type": "array", "items": metric},
        },
    }


def _schemas(*, v3: bool) -> dict[str, JsonObject]:
    return {
        f"{_PREFIX}.{KIND}": {**_traffic_metrics(v3=v3), "x-kubernetes-group-version-kind": _gvk(KIND)},
        f"{_PREFIX}.{LIST_KIND}": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "resource": _reference(),
                "items": {"type": "array", "items": _traffic_metrics(v3=v3)},
            },
            "x-kubernetes-group-version-kind": _gvk(LIST_KIND),
        },
    }


def v2() -> JsonObject:
    return {"swagger": "2.0", "info": {"title": GROUP, "version": VERSION}, "paths": {},
            "definitions": _schemas(v3=False)}


def v3_group_version() -> JsonObject:
    return {"openapi": "3.0.0", "info": {"title": GROUP, "version": VERSION}, "paths": {},
            "components": {"schemas": _schemas(v3=True)}}


def v3_root() -> JsonObject:
    """The discovery document: where the group-version's document is, with its hash for caching."""
    digest = hashlib.sha512(json.dumps(v3_group_version(), sort_keys=True).encode()).hexdigest().upper()
    return {"paths": {V3_PATH: {"serverRelativeURL": f"/openapi/v3/{V3_PATH}?hash={digest}"}}}
