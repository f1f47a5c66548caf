"""The one place that names every kind of workload a Canary can release."""

from __future__ import annotations

from collections.abc import Mapping

from canary.errors import SpecError
from canary.kube.cache import Kind
from canary.kube.workload_kinds.base import WorkloadKind
from canary.kube.workload_kinds.daemonset import DaemonSetKind
from canary.kube.workload_kinds.deployment import DeploymentKind

#: By API kind, as ``spec.targetRef.kind`` names it.
_IMPLEMENTATIONS: tuple[WorkloadKind, ...] = (DeploymentKind(), DaemonSetKind())
WORKLOAD_KINDS: Mapping[str, WorkloadKind] = {impl.kind.value: impl for impl in _IMPLEMENTATIONS}


def workload_kind(kind: str) -> WorkloadKind:
    """The implementation for ``spec.targetRef.kind``; the spec parser admits no kind without
    one, so a miss means the two lists drifted apart."""
    try:
        return WORKLOAD_KINDS[kind]
    except KeyError as exc:
        raise SpecError("spec.targetRef.kind", f"{kind!r} is not supported; use one of "
                        f"{', '.join(WORKLOAD_KINDS)}") from exc


def for_cache_kind(kind: Kind) -> WorkloadKind | None:
    """The implementation for a cached object's kind; None for objects that are no workload."""
    return WORKLOAD_KINDS.get(kind.value)
