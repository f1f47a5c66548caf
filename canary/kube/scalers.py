"""The primary's copy of the target's autoscaler (``spec.autoscalerRef``), as Flagger makes it.

The target's HorizontalPodAutoscaler or KEDA ScaledObject keeps scaling the target (the canary);
the primary gets ``<name>-primary``, the same spec pointed at ``<target>-primary``, with
``primaryScalerReplicas`` replacing the replica range and, for a ScaledObject,
``primaryScalerQueries`` replacing trigger queries. Observation and execution both build the
copy here, so "in sync" means exactly "what the executor would write".
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary.domain.autoscaler_spec import AutoscalerRef, ScalerKind
from canary.kube.cache import Kind, ObjectKey
from canary.kube.workloads import MANAGED_BY, primary_name


@dataclass(frozen=True)
class ScalerResource:
    group: str
    version: str
    plural: str
    kind: Kind


SCALER_RESOURCES: Mapping[ScalerKind, ScalerResource] = {
    ScalerKind.HPA: ScalerResource("autoscaling", "v2", "horizontalpodautoscalers", Kind.HPA),
    ScalerKind.SCALED_OBJECT: ScalerResource("keda.sh", "v1alpha1", "scaledobjects", Kind.SCALED_OBJECT),
}


#: KEDA holds a ScaledObject's target at this many replicas while the annotation is set.
KEDA_PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"


def pausable(ref: AutoscalerRef) -> bool:
    """An HPA never scales a workload at zero replicas; KEDA's operator does (activation)."""
    return ref.kind is ScalerKind.SCALED_OBJECT


def held_at_zero(scaler: Mapping[str, Any]) -> bool:
    return ((scaler.get("metadata") or {}).get("annotations") or {}).get(KEDA_PAUSED_REPLICAS) == "0"


def scaler_keys(namespace: str, ref: AutoscalerRef) -> tuple[ObjectKey, ObjectKey]:
    """(the target's scaler, the primary's copy)."""
    kind = SCALER_RESOURCES[ref.kind].kind
    return ObjectKey(kind, namespace, ref.name), ObjectKey(kind, namespace, ref.primary_name)


def primary_scaler(source: Mapping[str, Any], ref: AutoscalerRef, target_name: str,
                   owner: Mapping[str, Any]) -> dict[str, Any]:
    """The whole ``-primary`` object for the target's scaler ``source``."""
    meta = source.get("metadata") or {}
    # Only the spec is copied: the source's labels and annotations carry GitOps tracking (and
    # KEDA's own annotations) that would make tools prune or adopt the copy.
    return {
        "apiVersion": ref.api_version,
        "kind": ref.kind.value,
        "metadata": {
            "name": ref.primary_name,
            "namespace": meta.get("namespace"),
            "labels": dict(MANAGED_BY),
            "ownerReferences": [dict(owner)],
        },
        "spec": primary_scaler_spec(source.get("spec") or {}, ref, target_name),
    }


def primary_scaler_spec(spec: Mapping[str, Any], ref: AutoscalerRef, target_name: str) -> dict[str, Any]:
    out = copy.deepcopy(dict(spec))
    target = dict(out.get("scaleTargetRef") or {})
    target["name"] = primary_name(target_name)
    out["scaleTargetRef"] = target
    low, high = ("minReplicas", "maxReplicas") if ref.kind is ScalerKind.HPA else ("minReplicaCount", "maxReplicaCount")
    if ref.primary_min_replicas is not None:
        out[low] = ref.primary_min_replicas
    if ref.primary_max_replicas is not None:
        out[high] = ref.primary_max_replicas
    if ref.kind is ScalerKind.SCALED_OBJECT:
        out["triggers"] = [_primary_trigger(t, ref, target_name) for t in out.get("triggers") or []]
    return out


def _primary_trigger(trigger: Mapping[str, Any], ref: AutoscalerRef, target_name: str) -> dict[str, Any]:
    out = dict(trigger)
    metadata = dict(out.get("metadata") or {})
    if "query" not in metadata:
        return out
    name = out.get("name")
    if isinstance(name, str) and name in ref.primary_scaler_queries:
        metadata["query"] = ref.primary_scaler_queries[name]
    else:
        # Flagger's fallback: the query about the target (or its -canary) asks about the primary.
        # Best effort, as there; primaryScalerQueries says it exactly.
        metadata["query"] = re.sub(rf"{re.escape(target_name)}(?:-canary)?(?!-primary)",
                                   primary_name(target_name), str(metadata["query"]))
    out["metadata"] = metadata
    return out


def scaler_in_sync(primary: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """The copy scales as the target's scaler says. Both specs went through the API server's
    defaulting (the copy was written from a defaulted source), so equal means equal."""
    return bool(primary.get("spec") == desired.get("spec"))
