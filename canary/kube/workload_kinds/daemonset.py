"""``apps/v1`` DaemonSets, with Flagger's meaning: one pod per eligible node, no replica count.

"Scaled to zero" is a node selector no node matches (:data:`SCALE_TO_ZERO_KEY`), added to and
removed from the target's pod template; the key is the controller's, so it is left out of the
revision and of the primary's copy. Any other replica count means "scheduled": the domain's
``replicas`` is 1 for a scheduled DaemonSet and 0 for one scaled to zero.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

from canary.kube.api import KubeApi
from canary.kube.cache import Kind
from canary.kube.revision import ConfigRef
from canary.kube.workloads import primary_workload, template_patch

#: A node label no node carries: selecting on it leaves the DaemonSet with no pods at all.
SCALE_TO_ZERO_KEY = "canary.dev/scale-to-zero"
SCALE_TO_ZERO_VALUE = "true"


def scaled_to_zero(workload: Mapping[str, Any]) -> bool:
    template = (workload.get("spec") or {}).get("template") or {}
    return SCALE_TO_ZERO_KEY in ((template.get("spec") or {}).get("nodeSelector") or {})


class DaemonSetKind:
    kind: Kind = Kind.DAEMON_SET
    group: str = "apps"
    plural: str = "daemonsets"

    def pod_template(self, workload: Mapping[str, Any]) -> Mapping[str, Any]:
        template = copy.deepcopy(dict((workload.get("spec") or {}).get("template") or {}))
        pod_spec = template.get("spec") or {}
        selector = {k: v for k, v in (pod_spec.get("nodeSelector") or {}).items() if k != SCALE_TO_ZERO_KEY}
        # The API server drops an empty nodeSelector, so an absent one must hash the same.
        if selector:
            pod_spec["nodeSelector"] = selector
        else:
            pod_spec.pop("nodeSelector", None)
        return template

    def replicas(self, workload: Mapping[str, Any]) -> int:
        return 0 if scaled_to_zero(workload) else 1

    def readiness(self, workload: Mapping[str, Any], ready_threshold: int) -> tuple[bool, str]:
        return daemonset_readiness(workload, ready_threshold)

    def primary_body(self, target: Mapping[str, Any], *, owner: Mapping[str, Any], replicas: int, revision: str,
                     copied: Iterable[ConfigRef]) -> dict[str, Any]:
        # ``replicas`` is always at least 1 here (the domain never creates an empty primary),
        # and a DaemonSet has nothing to set it on.
        return primary_workload(target, self.pod_template(target), kind=self.kind.value, owner=owner,
                                revision=revision, copied=copied)

    def promotion_patch(self, target: Mapping[str, Any], revision: str,
                        copied: Iterable[ConfigRef]) -> dict[str, Any]:
        return template_patch(target, self.pod_template(target), revision, copied)

    def scale_patch(self, replicas: int) -> dict[str, Any]:
        # A merge patch: the user's own node selector keys are left as they are.
        value = SCALE_TO_ZERO_VALUE if replicas == 0 else None
        return {"spec": {"template": {"spec": {"nodeSelector": {SCALE_TO_ZERO_KEY: value}}}}}

    def read(self, api: KubeApi, namespace: str, name: str) -> Awaitable[object]:
        return api.call(api.apps.read_namespaced_daemon_set, name, namespace)

    def create(self, api: KubeApi, namespace: str, body: Mapping[str, Any]) -> Awaitable[object]:
        return api.call(api.apps.create_namespaced_daemon_set, namespace, body)

    def patch(self, api: KubeApi, namespace: str, name: str, body: Any, content_type: str) -> Awaitable[object]:
        return api.call(api.apps.patch_namespaced_daemon_set, name, namespace, body, _content_type=content_type)


def daemonset_readiness(daemonset: Mapping[str, Any], ready_threshold: int = 100) -> tuple[bool, str]:
    """Rolled out as ``kubectl rollout status`` would say, on at least one node; with a
    ``ready_threshold`` below 100 (Flagger's primary/canaryReadyThreshold), that percentage of
    the scheduled pods available is enough."""
    meta, status = daemonset.get("metadata") or {}, daemonset.get("status") or {}
    if scaled_to_zero(daemonset):
        return False, f"scaled to zero (node selector {SCALE_TO_ZERO_KEY}={SCALE_TO_ZERO_VALUE})"
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False, "the DaemonSet controller has not seen the latest spec yet"
    desired = status.get("desiredNumberScheduled") or 0
    updated = status.get("updatedNumberScheduled") or 0
    available = status.get("numberAvailable") or 0
    if desired == 0:
        return False, "no node to run on: its node selector, affinity or tolerations match no node"
    if updated < desired:
        return False, f"{updated} of {desired} scheduled pods updated"
    needed = max(1, math.ceil(desired * ready_threshold / 100))
    if available < needed:
        short = f" ({needed} needed)" if ready_threshold < 100 else ""
        return False, f"{available} of {desired} scheduled pods available{short}"
    return True, ""
