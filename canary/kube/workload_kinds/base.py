"""What the controller's shell needs from a kind of workload, and nothing more.

The domain speaks of "replicas": how many the primary runs and whether the canary is scaled
to zero. Each kind maps that to what it can express: a Deployment by ``spec.replicas``, a
DaemonSet by whether its pods are scheduled on any node at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Protocol

from canary.kube.api import KubeApi
from canary.kube.cache import Kind
from canary.kube.revision import ConfigRef


class WorkloadKind(Protocol):
    #: The cache's kind; its value is also the API ``kind`` (what ``spec.targetRef.kind`` says).
    kind: Kind
    #: API group and plural, for the watch.
    group: str
    plural: str

    def pod_template(self, workload: Mapping[str, Any]) -> Mapping[str, Any]:
        """The pod template as the user wrote it: what the revision is a hash of and what the
        primary copies, without anything the controller itself put there to scale it."""

    def replicas(self, workload: Mapping[str, Any]) -> int:
        """The domain's replica count: 0 exactly when scaled to zero."""

    def readiness(self, workload: Mapping[str, Any], ready_threshold: int) -> tuple[bool, str]:
        """Rolled out and available, with ``ready_threshold`` percent of the pods enough; when
        not, a message saying what is missing."""

    def primary_body(self, target: Mapping[str, Any], *, owner: Mapping[str, Any], replicas: int, revision: str,
                     copied: Iterable[ConfigRef]) -> dict[str, Any]:
        """The complete ``-primary`` object running ``target``'s pod template."""

    def promotion_patch(self, target: Mapping[str, Any], revision: str,
                        copied: Iterable[ConfigRef]) -> dict[str, Any]:
        """Merge patch making an existing primary run ``target``'s pod template; only the
        template and the revision annotation, nothing an autoscaler or a person may own."""

    def scale_patch(self, replicas: int) -> dict[str, Any]:
        """Merge patch scaling a workload of this kind to ``replicas`` (0: no pods at all)."""

    def read(self, api: KubeApi, namespace: str, name: str) -> Awaitable[object]:
        """GET the object (``NotFound`` when absent)."""

    def create(self, api: KubeApi, namespace: str, body: Mapping[str, Any]) -> Awaitable[object]:
        """POST ``body``; fenced by ``api`` like every write."""

    def patch(self, api: KubeApi, namespace: str, name: str, body: Any, content_type: str) -> Awaitable[object]:
        """PATCH with ``content_type`` (merge or JSON patch); fenced by ``api`` like every write."""
