"""The metric provider interfaces: one measurement per check per analysis tick, and the
canary-versus-primary comparison the judge reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from canary.domain.providers import Mesh
from canary.domain.samples import Comparison
from canary.domain.spec import MetricSpec, MetricTemplateSpec


@dataclass(frozen=True)
class MeasureRequest:
    """Everything a provider needs to measure one metric of one canary."""

    metric: MetricSpec
    namespace: str
    name: str  # the Canary's name
    target: str  # the canary workload (targetRef.name)
    service: str  # the apex Service
    window: timedelta  # metric.interval or the analysis interval
    template: MetricTemplateSpec | None = None  # resolved templateRef, None for builtins
    #: The builtin checks' metric names when the Canary's provider names a mesh (linkerd, osm);
    #: None: the controller's --mesh.
    mesh: Mesh | None = None
    #: Flagger's spec.metricsServer: the Prometheus the builtin checks ask; None: the controller's.
    metrics_server: str | None = None
    target_kind: str = "Deployment"  # targetRef.kind: which workload label or path names the target
    #: The canary's Service (``<apex>-canary``): what a gateway's metrics (Traefik) name the canary by.
    canary_service: str | None = None


@dataclass(frozen=True)
class Measurement:
    """What a provider answered. ``value is None`` means no data: never a pass."""

    value: float | None
    source: str  # the rendered query or URL, shown to users in status
    samples: float | None = None  # requests in the window, where the provider knows it


class MetricProvider(Protocol):
    async def measure(self, request: MeasureRequest) -> Measurement:
        """Raises ``ProviderUnavailable`` after bounded retries, ``TemplateError`` for bad templates."""
        ...


@dataclass(frozen=True)
class CompareRequest:
    """Both versions of one canary over the same window, for the judge."""

    namespace: str
    target: str  # the canary workload (targetRef.name)
    primary: str  # the primary workload: <target>-primary
    window: timedelta  # the time since the current step started
    #: The builtin metric names' mesh when the Canary's provider names one; None: the controller's.
    mesh: Mesh | None = None
    #: Flagger's spec.metricsServer: the Prometheus to ask; None: the controller's source.
    metrics_server: str | None = None
    target_kind: str = "Deployment"
    #: Whether to fetch the latency histograms too (the judge's latency test is on).
    latency: bool = True
    #: The canary's and the primary's Services (``<apex>-canary``, ``<apex>-primary``): what a
    #: gateway's metrics (Traefik) name the versions by.
    services: tuple[str, str] | None = None


class ComparisonProvider(Protocol):
    async def compare(self, request: CompareRequest) -> Comparison:
        """Raises ``ProviderUnavailable`` after bounded retries, ``MetricError`` for a broken answer."""
        ...
