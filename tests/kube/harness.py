"""Whole releases against the in-memory cluster: the real reconciler, executor, probe runner and
router directory, a controllable clock, and metric answers chosen by the test.

Nothing sleeps and no background task reconciles: the test calls ``reconcile_once(now=...)``
itself, then lets the Deployment controller catch up (``FakeCluster.tick``), which is what the
watch-driven loop does in production, one wake-up at a time.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import aiohttp

from canary.config import Settings
from canary.domain.samples import Comparison
from canary.domain.status import CanaryStatus, ConditionType, Phase
from canary.errors import MetricError
from canary.kube.cache import ClusterCache, Kind, ObjectKey
from canary.kube.execute import Executor
from canary.kube.gateway_classes import GatewayClasses
from canary.kube.probes import ProbeRunner
from canary.kube.reconciler import CanaryReconciler, ReconcilerRegistry, Services
from canary.kube.routes import RouterDirectory
from canary.metrics.base import CompareRequest, MeasureRequest, Measurement
from canary.metrics.engine import Credentials, MeasureResult, MetricsEngine
from canary.telemetry import ControllerMetrics
from tests.kube.fake_cluster import FakeCluster

NS = "test"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
IMAGE = "ghcr.io/stefanprodan/podinfo"
SMI = "split.smi-spec.io"
GATEWAY = "gateway.networking.k8s.io"
#: What a Linkerd cluster with the linkerd-smi extension serves.
LINKERD_SMI = {SMI: ["v1alpha1", "v1alpha2"]}
CANARY_KEY = ObjectKey(Kind.CANARY, NS, "podinfo")


def target_deployment(tag: str = "6.0.0", replicas: int = 2, **template_annotations: str) -> dict[str, Any]:
    """The Deployment Git owns: reads a ConfigMap through envFrom, a Secret through an env
    valueFrom, and mounts an optional ConfigMap that does not exist."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": NS, "labels": {"app": "podinfo", "team": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo", "team": "web"},
                             "annotations": {"prometheus.io/scrape": "true", **template_annotations}},
                "spec": {
                    "containers": [{
                        "name": "podinfod",
                        "image": f"{IMAGE}:{tag}",
                        "ports": [{"name": "http", "containerPort": 9898}],
                        "envFrom": [{"configMapRef": {"name": "podinfo-config"}}],
                        "env": [{"name": "TOKEN",
                                 "valueFrom": {"secretKeyRef": {"name": "podinfo-token", "key": "token"}}}],
                    }],
                    "volumes": [{"name": "extra", "configMap": {"name": "podinfo-extra", "optional": True}}],
                },
            },
        },
    }


def target_daemonset(tag: str = "6.0.0", **template_annotations: str) -> dict[str, Any]:
    """The same workload as :func:`target_deployment`, as a DaemonSet (one pod per node)."""
    body = target_deployment(tag, **template_annotations)
    body["kind"] = "DaemonSet"
    del body["spec"]["replicas"]
    return body


def config_map(data: Mapping[str, str] | None = None, name: str = "podinfo-config") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "podinfo"}},
            "data": dict(data or {"PODINFO_UI_COLOR": "#34577c"})}


def secret(token: str = "czNjcjN0") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "podinfo-token", "namespace": NS}, "data": {"token": token}}


def canary_body(provider: str | None = "smi", **spec: Any) -> dict[str, Any]:
    analysis: dict[str, Any] = {
        "interval": "1m", "threshold": 2, "stepWeight": 10, "maxWeight": 50,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}],
    }
    analysis.update(spec.pop("analysis", {}))
    body: dict[str, Any] = {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": NS, "uid": "canary-uid-1"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "targetPort": "http"},
            "progressDeadlineSeconds": 120,
            "analysis": analysis,
            **spec,
        },
    }
    if provider is not None:
        body["spec"]["provider"] = provider
    return body


def cluster_with_app(served: Mapping[str, Sequence[str]] | None = None) -> FakeCluster:
    """A cluster where the target runs, ready, with its ConfigMap and Secret."""
    cluster = FakeCluster(served={k: list(v) for k, v in (served if served is not None else LINKERD_SMI).items()})
    for body in (config_map(), secret(), target_deployment()):
        cluster.apply(body)
    cluster.tick()
    return cluster


@dataclass
class FakeEngine:
    """Stands in for ``MetricsEngine``: answers every request with ``value``."""

    value: float | None = 99.9
    samples: float | None = 250
    #: Returned in place of every measurement while set (a provider down, a refused query).
    failure: MetricError | None = None
    asked: list[tuple[MeasureRequest, ...]] = field(default_factory=list)
    credentials: list[Credentials | None] = field(default_factory=list)
    compared: list[CompareRequest] = field(default_factory=list)

    async def measure_all(self, requests: Sequence[MeasureRequest],
                          credentials: Credentials | None = None) -> list[MeasureResult]:
        self.asked.append(tuple(requests))
        self.credentials.append(credentials)
        if self.failure is not None:
            return [self.failure for _ in requests]
        return [Measurement(value=self.value, source=f"success rate of {r.namespace}/{r.target} over {r.window}",
                            samples=self.samples) for r in requests]

    async def compare(self, request: CompareRequest) -> Comparison:
        """Only a failing comparison is scripted here (tests/metrics and tests/domain judge real ones)."""
        self.compared.append(request)
        if self.failure is not None:
            raise self.failure
        raise AssertionError(f"no comparison scripted for {request}")


@dataclass
class Release:
    cluster: FakeCluster
    engine: FakeEngine
    settings: Settings
    session: aiohttp.ClientSession
    services: Services = field(init=False)
    registry: ReconcilerRegistry = field(init=False)
    now: datetime = T0
    last_delay: timedelta | None = None

    def __post_init__(self) -> None:
        self._connect()

    def _connect(self) -> None:
        """A controller process: its own caches, filled by listing the cluster, as at start-up."""
        cache = ClusterCache()
        api = self.cluster.api
        self.services = Services(
            settings=self.settings, cache=cache, executor=Executor(api, cache, self.session),
            probes=ProbeRunner(api, cache, self.session, cast(MetricsEngine, self.engine), self.settings.metrics),
            # Gateway classes are re-read on the release's clock, so a test can let their cache age.
            routers=RouterDirectory(api, self.settings, GatewayClasses(api, clock=lambda: self.now.timestamp())),
            metrics=ControllerMetrics(),
        )
        self.registry = ReconcilerRegistry(self.services)
        self.cluster.attach(self.registry)

    async def restart(self) -> None:
        """The controller dies and a new one starts: nothing survives but the cluster."""
        await self.registry.stop_all()
        self._connect()

    @property
    def reconciler(self) -> CanaryReconciler:
        found = self.registry.get(CANARY_KEY)
        assert found is not None, "the watch never delivered the Canary"
        return found

    async def reconcile(self) -> timedelta | None:
        """One wake-up at ``now``; afterwards the Deployment controller catches up."""
        self.last_delay = await self.reconciler.reconcile_once(now=self.now)
        self.cluster.tick()
        return self.last_delay

    def advance(self, delay: timedelta | None = None) -> None:
        step = delay if delay is not None else self.last_delay
        assert step is not None
        self.now += step

    async def run_until(self, done: Callable[[Release], bool], max_steps: int = 40) -> None:
        """Reconcile whenever the controller asked to be woken, until ``done``."""
        for _ in range(max_steps):
            await self.reconcile()
            if done(self):
                return
            self.advance()
        raise AssertionError(f"not done after {max_steps} reconciliations; status {self.status}")

    async def run_until_phase(self, phase: Phase, max_steps: int = 40) -> None:
        await self.run_until(lambda r: r.status.phase is phase, max_steps)

    async def initialize(self) -> None:
        await self.run_until_phase(Phase.INITIALIZED)
        self.advance()

    @property
    def canary(self) -> dict[str, Any]:
        found = self.cluster.get("Canary", NS, "podinfo")
        assert found is not None
        return found

    @property
    def status(self) -> CanaryStatus:
        """What is persisted in the Canary's status subresource, not the reconciler's memory."""
        return CanaryStatus.from_dict(self.canary.get("status"))

    def condition(self, kind: ConditionType) -> tuple[bool, str, str]:
        found = self.status.condition(kind)
        assert found is not None, f"no {kind} condition in {self.status.conditions}"
        return found.status, found.reason, found.message

    def deployment(self, name: str) -> dict[str, Any]:
        found = self.cluster.get("Deployment", NS, name)
        assert found is not None, f"no Deployment {name}"
        return found

    def push(self, tag: str) -> None:
        """Git changes the image of the target."""
        body = copy.deepcopy(self.deployment("podinfo"))
        body["spec"]["template"]["spec"]["containers"][0]["image"] = f"{IMAGE}:{tag}"
        self.cluster.apply(body)


@asynccontextmanager
async def release(cluster: FakeCluster, canary: Mapping[str, Any] | None = None, *,
                  engine: FakeEngine | None = None, settings: Settings | None = None) -> AsyncIterator[Release]:
    # A debounce of a day parks the registry's own loops: only the test reconciles.
    settings = settings or Settings(debounce=timedelta(days=1))
    async with aiohttp.ClientSession() as session:
        rel = Release(cluster=cluster, engine=engine or FakeEngine(), settings=settings, session=session)
        cluster.apply(dict(canary or canary_body()))
        try:
            yield rel
        finally:
            await rel.registry.stop_all()
