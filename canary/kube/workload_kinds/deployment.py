"""``apps/v1`` Deployments: scaled by ``spec.replicas``, ready as ``kubectl rollout status`` says."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

from canary.kube.api import KubeApi
from canary.kube.cache import Kind
from canary.kube.revision import ConfigRef
from canary.kube.workloads import primary_workload, template_patch


class DeploymentKind:
    kind: Kind = Kind.DEPLOYMENT
    group: str = "apps"
    plural: str = "deployments"

    def pod_template(self, workload: Mapping[str, Any]) -> Mapping[str, Any]:
        return dict((workload.get("spec") or {}).get("template") or {})

    def replicas(self, workload: Mapping[str, Any]) -> int:
        return int((workload.get("spec") or {}).get("replicas", 1))

    def readiness(self, workload: Mapping[str, Any], ready_threshold: int) -> tuple[bool, str]:
        return deployment_readiness(workload, ready_threshold)

    def primary_body(self, target: Mapping[str, Any], *, owner: Mapping[str, Any], replicas: int, revision: str,
                     copied: Iterable[ConfigRef]) -> dict[str, Any]:
        body = primary_workload(target, self.pod_template(target), kind=self.kind.value, owner=owner,
                                revision=revision, copied=copied)
        body["spec"]["replicas"] = replicas
        return body

    def promotion_patch(self, target: Mapping[str, Any], revision: str,
                        copied: Iterable[ConfigRef]) -> dict[str, Any]:
        # Replicas stay out: an autoscaler may own them.
        return template_patch(target, self.pod_template(target), revision, copied)

    def scale_patch(self, replicas: int) -> dict[str, Any]:
        return {"spec": {"replicas": replicas}}

    def read(self, api: KubeApi, namespace: str, name: str) -> Awaitable[object]:
        return api.call(api.apps.read_namespaced_deployment, name, namespace)

    def create(self, api: KubeApi, namespace: str, body: Mapping[str, Any]) -> Awaitable[object]:
        return api.call(api.apps.create_namespaced_deployment, namespace, body)

    def patch(self, api: KubeApi, namespace: str, name: str, body: Any, content_type: str) -> Awaitable[object]:
        return api.call(api.apps.patch_namespaced_deployment, name, namespace, body, _content_type=content_type)


def deployment_readiness(deployment: Mapping[str, Any], ready_threshold: int = 100) -> tuple[bool, str]:
    """Rolled out as ``kubectl rollout status`` would say, plus at least one replica; with a
    ``ready_threshold`` below 100 (Flagger's primary/canaryReadyThreshold), that percentage of
    the updated replicas available is enough."""
    meta, spec, status = deployment.get("metadata") or {}, deployment.get("spec") or {}, deployment.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return False, f"rollout stuck: {cond.get('message', 'progress deadline exceeded')}"
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False, "the Deployment controller has not seen the latest spec yet"
    want = spec.get("replicas", 1)
    if want == 0:
        return False, "scaled to zero"
    updated = status.get("updatedReplicas") or 0
    total = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    if updated < want:
        return False, f"{updated} of {want} replicas updated"
    if total > updated:
        return False, f"{total - updated} old replicas pending termination"
    needed = max(1, math.ceil(updated * ready_threshold / 100))
    if available < needed:
        short = f" ({needed} needed)" if ready_threshold < 100 else ""
        return False, f"{available} of {updated} updated replicas available{short}"
    return True, ""
