"""What the watch cache keeps of each object: the parts decisions and writes read, nothing else.

A Deployment as the API server sends it is mostly bookkeeping no decision reads: the
``managedFields`` of every writer (often half of the object), kubectl's
``last-applied-configuration`` annotation (a second copy of the whole spec), timestamps on
every status condition, a Service's cluster IPs and load-balancer status. Held for every watched
object, as Python dicts (five to six times the size of their JSON), that was most of the
controller's memory. The cache stores the projection made here instead; the readers
(``observe``, ``execute``, the routers, ``scalers``, ``probes``) see exactly what they read
before, and the tests in ``tests/kube/test_projection.py`` pin down what each of them needs.

What must survive, by reader:

* every write is conditional on ``metadata.resourceVersion``; the Canary's ``uid``, ``apiVersion``
  and ``kind`` make the owner references; ``finalizers`` and ``deletionTimestamp`` drive the
  finalizer; labels and annotations are compared (Services), copied (the primary's labels) and
  read (on-call annotations, the primary's revision, KEDA's paused-replicas);
* a workload's whole ``spec``: the primary is created from a copy of it and promoted with its
  pod template, so nothing of it may be missing; of its ``status`` the counters and each
  condition's type, status, reason and message (readiness), never the timestamps;
* a Service's ``selector``, ``ports`` and ``type`` (compared with the wanted Service, and the
  ports kept when adopting one), and its ``ownerReferences`` (dropped when handing it back);
* the whole ``spec`` of routes, autoscalers and MetricTemplates (compared, copied or parsed
  whole), and the Canary's ``spec`` and ``status`` (the status is what the next patch is a diff
  against).

Keys and short values are interned while copying: every watch event is decoded into fresh
strings, so the same few hundred field names and common values would otherwise be stored once
per object.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

#: kubectl's copy of the whole object as last applied: never read, often as big as the spec.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

#: The metadata any reader uses (see the module docstring); ``managedFields``,
#: ``creationTimestamp``, ``generateName`` and the like are left out.
_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "labels", "annotations",
             "ownerReferences", "finalizers", "deletionTimestamp")
#: The parts of a status condition readiness reads; its two timestamps change on every rollout.
_CONDITION = ("type", "status", "reason", "message")
#: Strings up to this long are interned too; longer ones (messages, configs) rarely repeat.
_SHARED_VALUE_LENGTH = 64
#: What of a Service's spec the Canary compares and patches (selector, ports), and its type.
_SERVICE_SPEC = ("type", "selector", "ports")


def project(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``body`` the cache keeps for an object of ``kind`` (the cache's ``Kind``): a
    fresh copy that shares nothing with ``body``, so the watch's decoded event can be freed. A
    kind without a projection of its own loses only the bookkeeping in its metadata."""
    return _PROJECTIONS.get(kind, _without_bookkeeping)(body)


def _head(body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("apiVersion", "kind"):
        if key in body:
            out[key] = _compact(body[key])
    out["metadata"] = _metadata(body.get("metadata") or {})
    return out


def _metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    out = {_intern(key): _compact(meta[key]) for key in _METADATA if key in meta}
    annotations = out.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        del annotations[LAST_APPLIED]
    return out


def _spec_only(body: Mapping[str, Any]) -> dict[str, Any]:
    """Routes, autoscalers, MetricTemplates: read, compared and copied by their spec alone."""
    out = _head(body)
    if "spec" in body:
        out["spec"] = _compact(body["spec"])
    return out


def _without_bookkeeping(body: Mapping[str, Any]) -> dict[str, Any]:
    out = _head(body)
    out.update((_intern(k), _compact(v)) for k, v in body.items() if k not in out)
    return out


def _canary(body: Mapping[str, Any]) -> dict[str, Any]:
    out = _spec_only(body)
    if "status" in body:
        out["status"] = _compact(body["status"])
    return out


def _workload(body: Mapping[str, Any]) -> dict[str, Any]:
    out = _spec_only(body)
    status = body.get("status")
    if isinstance(status, Mapping):
        # Counters are scalars (Deployments and DaemonSets name them differently); the only
        # structured part readiness reads is the conditions.
        kept: dict[str, Any] = {_intern(k): v for k, v in status.items() if not isinstance(v, (Mapping, list))}
        conditions = status.get("conditions")
        if isinstance(conditions, list):
            kept["conditions"] = [
                {_intern(k): _compact(c[k]) for k in _CONDITION if k in c} for c in conditions if isinstance(c, Mapping)
            ]
        out["status"] = kept
    return out


def _service(body: Mapping[str, Any]) -> dict[str, Any]:
    out = _head(body)
    spec = body.get("spec")
    if isinstance(spec, Mapping):
        out["spec"] = {_intern(k): _compact(spec[k]) for k in _SERVICE_SPEC if k in spec}
    return out


def _compact(value: Any) -> Any:
    """A deep copy of JSON data with every mapping key and short string interned."""
    if isinstance(value, Mapping):
        return {_intern(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if type(value) is str and len(value) <= _SHARED_VALUE_LENGTH:
        # Short values repeat across objects ("True", "TCP", "apps/v1", an image, a label
        # value the primary shares with its target): one copy each.
        return sys.intern(value)
    return value


def _intern(key: Any) -> Any:
    return sys.intern(key) if type(key) is str else key


#: By the cache's ``Kind`` (a ``StrEnum``, so its members are these strings). ConfigMaps and
#: Secrets are not here: the cache keeps only a digest of their data.
_PROJECTIONS: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "Canary": _canary,
    "Deployment": _workload,
    "DaemonSet": _workload,
    "Service": _service,
    "Route": _spec_only,
    "HorizontalPodAutoscaler": _spec_only,
    "ScaledObject": _spec_only,
    "MetricTemplate": _spec_only,
}
