"""``spec.autoscalerRef``: the target's autoscaler, of which the primary gets a copy. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from canary.domain import bounds
from canary.domain.fields import mapping, optional_integer, string_map, text
from canary.errors import SpecError

__all__ = ["SCALER_API_VERSIONS", "AutoscalerRef", "ScalerKind", "parse_autoscaler_ref"]


class ScalerKind(StrEnum):
    HPA = "HorizontalPodAutoscaler"
    SCALED_OBJECT = "ScaledObject"


#: The one API version read for each scaler kind (autoscaling/v2beta2 left Kubernetes in 1.26).
SCALER_API_VERSIONS: Mapping[ScalerKind, str] = {
    ScalerKind.HPA: "autoscaling/v2",
    ScalerKind.SCALED_OBJECT: "keda.sh/v1alpha1",
}


@dataclass(frozen=True)
class AutoscalerRef:
    """The target's autoscaler, of which the primary gets a ``-primary`` copy (Flagger's meaning)."""

    name: str
    kind: ScalerKind
    #: ScaledObject trigger name -> the query its primary copy runs instead.
    primary_scaler_queries: Mapping[str, str] = field(default_factory=dict)
    #: Overrides of the copy's replica range (None: the target scaler's own).
    primary_min_replicas: int | None = None
    primary_max_replicas: int | None = None

    @property
    def api_version(self) -> str:
        return SCALER_API_VERSIONS[self.kind]

    @property
    def primary_name(self) -> str:
        return f"{self.name}-primary"


def parse_autoscaler_ref(value: object, path: str = "spec.autoscalerRef") -> AutoscalerRef | None:
    if value is None:
        return None
    raw = mapping(value, path)
    kinds = ", ".join(k.value for k in ScalerKind)
    try:
        kind = ScalerKind(str(raw.get("kind")))
    except ValueError as exc:
        raise SpecError(f"{path}.kind", f"{raw.get('kind')!r} is not one of {kinds}") from exc
    api_version = raw.get("apiVersion")
    if api_version != SCALER_API_VERSIONS[kind]:
        raise SpecError(f"{path}.apiVersion", f"{api_version!r}: a {kind.value} is read as "
                                              f"{SCALER_API_VERSIONS[kind]} (autoscaling/v2beta2 left Kubernetes "
                                              "in 1.26; the same objects are served as autoscaling/v2)")
    queries = string_map(raw.get("primaryScalerQueries"), f"{path}.primaryScalerQueries")
    if queries and kind is not ScalerKind.SCALED_OBJECT:
        raise SpecError(f"{path}.primaryScalerQueries", "replaces ScaledObject trigger queries; a "
                                                         "HorizontalPodAutoscaler has none")
    replicas = mapping(raw.get("primaryScalerReplicas"), f"{path}.primaryScalerReplicas")
    where = f"{path}.primaryScalerReplicas"
    low = optional_integer(replicas, "minReplicas", where, bounds.PRIMARY_SCALER_MIN_REPLICAS)
    high = optional_integer(replicas, "maxReplicas", where, bounds.PRIMARY_SCALER_MAX_REPLICAS)
    if low is not None and high is not None and low > high:
        raise SpecError(where, f"minReplicas {low} is above maxReplicas {high}")
    return AutoscalerRef(name=text(raw.get("name"), f"{path}.name"), kind=kind, primary_scaler_queries=queries,
                         primary_min_replicas=low, primary_max_replicas=high)
