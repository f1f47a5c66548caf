"""The API this server serves: ``metrics.smi-spec.io/v1alpha1`` and the kinds it knows.

Each kind of the Traffic Metrics API is named after the Kubernetes resource it reports on
(``deployments`` reports on ``apps/v1`` Deployments); :class:`Kind` carries both names and
where the Kubernetes objects are listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

GROUP = "metrics.smi-spec.io"
VERSION = "v1alpha1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
API_PREFIX = f"/apis/{GROUP_VERSION}"
KIND = "TrafficMetrics"
LIST_KIND = "TrafficMetricsList"
EDGES = "edges"

#: An object or a peer: ``(namespace, name)``, namespace None for namespaces themselves.
ObjectKey = tuple[str | None, str]


class Kind(StrEnum):
    """A resource of the Traffic Metrics API, by its plural name."""

    DEPLOYMENTS = "deployments"
    PODS = "pods"
    DAEMONSETS = "daemonsets"
    STATEFULSETS = "statefulsets"
    NAMESPACES = "namespaces"

    @property
    def info(self) -> KindInfo:
        return KIND_INFO[self]

    @property
    def namespaced(self) -> bool:
        return self is not Kind.NAMESPACES


@dataclass(frozen=True)
class KindInfo:
    #: The Kubernetes kind the metrics are about, as written in ``resource.kind``.
    object_kind: str
    #: The Kubernetes API group and version the objects are listed from ("" + v1 is the core API).
    api_group: str
    api_version: str

    def list_path(self, plural: str, namespace: str | None) -> str:
        base = f"/api/{self.api_version}" if not self.api_group else f"/apis/{self.api_group}/{self.api_version}"
        if namespace is None:
            return f"{base}/{plural}"
        return f"{base}/namespaces/{namespace}/{plural}"


KIND_INFO: dict[Kind, KindInfo] = {
    Kind.DEPLOYMENTS: KindInfo("Deployment", "apps", "v1"),
    Kind.PODS: KindInfo("Pod", "", "v1"),
    Kind.DAEMONSETS: KindInfo("DaemonSet", "apps", "v1"),
    Kind.STATEFULSETS: KindInfo("StatefulSet", "apps", "v1"),
    Kind.NAMESPACES: KindInfo("Namespace", "", "v1"),
}
