"""Canary objects as the API server returns them, with status written by the real domain code."""

from __future__ import annotations

from typing import Any

from canary.domain.conditions import derive_conditions
from canary.domain.observed import Problem
from canary.domain.status import CanaryStatus, Phase
from tests.domain.world import T0

PROBLEM = Problem(field="spec.analysis.metrics[0].templateRef", reason="TemplateNotFound",
                  message="MetricTemplate errors not found")


def canary_object(
    phase: Phase | None = Phase.SUCCEEDED,
    *,
    generation: int = 1,
    observed: int | None = 1,
    annotations: dict[str, str] | None = None,
    suspend: bool = False,
    problem: Problem | None = None,
    handled: dict[str, str] | None = None,
    weight: int = 0,
    message: str = "",
) -> dict[str, Any]:
    """A Canary whose status is ``CanaryStatus.to_dict`` with the conditions the controller
    derives for it; ``observed=None`` leaves the status out (a Canary never reconciled)."""
    paused = (annotations or {}).get("canary.dev/pause", "").lower() == "true"
    obj: dict[str, Any] = {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "apps", "generation": generation,
                     "resourceVersion": "42", "uid": "0b5c6c7e-1111-2222-3333-444455556666"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                 "service": {"port": 9898}, "analysis": {"interval": "1m", "threshold": 2}},
    }
    if annotations is not None:
        obj["metadata"]["annotations"] = dict(annotations)
    if suspend:
        obj["spec"]["suspend"] = True
    if observed is not None:
        status = CanaryStatus(phase=phase, canary_weight=weight, observed_generation=observed,
                              handled_annotations=dict(handled or {}), message=message)
        status = status.with_(conditions=derive_conditions(status, T0, problem=problem, suspended=suspend,
                                                           paused=paused))
        obj["status"] = without_nulls(status.to_dict())
    return obj


def without_nulls(value: Any) -> Any:
    """What the API server stores of a status the controller writes: its writes are merge
    patches, in which null means "remove", so stored statuses hold no nulls (and Lua, which
    cannot hold a null either, gives the same object back)."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value
