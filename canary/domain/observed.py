"""What the Kubernetes layer saw in the cluster, reduced to the facts decisions depend on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from canary.domain.weights import Weights


@dataclass(frozen=True)
class WorkloadState:
    exists: bool = False
    #: Revision: a hash of the pod template and of every ConfigMap/Secret it uses.
    checksum: str = ""
    #: Rolled out and available: every replica updated and ready, and at least one replica.
    ready: bool = False
    #: 0 exactly when scaled to zero; a DaemonSet, which has no count, is 1 while scheduled.
    replicas: int = 0
    message: str = ""


@dataclass(frozen=True)
class RouteState:
    exists: bool = False
    #: None when the object exists but is not in the shape this controller writes.
    weights: Weights | None = None


@dataclass(frozen=True)
class ScalerState:
    """The target's autoscaler (``spec.autoscalerRef``) and the primary's copy of it."""

    target_exists: bool = False
    primary_exists: bool = False
    #: The primary's copy has the spec the target's scaler implies now (scale target, replica
    #: range overrides and trigger queries applied).
    primary_in_sync: bool = False
    #: The target's scaler can be held at zero (a KEDA ScaledObject, whose operator would
    #: otherwise wake the canary from zero; an HPA never scales a workload at zero).
    pausable: bool = False
    #: ... and it is held at zero now.
    target_paused: bool = False


@dataclass(frozen=True)
class Problem:
    """Something only the controller can see is wrong; shown as ``Stalled`` until fixed."""

    field: str
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    generation: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)
    target: WorkloadState = WorkloadState()
    primary: WorkloadState = WorkloadState()
    #: The apex, primary and canary Services exist and select the right pods.
    services_ready: bool = False
    route: RouteState = RouteState()
    #: None when the Canary has no ``autoscalerRef``.
    scaler: ScalerState | None = None
    deleting: bool = False
    #: The Canary carries the ``canary.dev/revert-on-deletion`` finalizer.
    finalizer: bool = False
    problem: Problem | None = None
    #: First reconciliation since the controller started: a route that differs from the status
    #: may be a write the previous process did not finish, so it is repaired without being
    #: reported as someone else's change.
    fresh_start: bool = False
