"""One whole release, driven through the real decision, probe runner and Prometheus provider code,
with only the Prometheus HTTP call answered by simulated traffic.

The loop is the controller's: ``decide``; when it needs probes, the real :class:`ProbeRunner` runs
them (its metric checks go through :class:`MetricsEngine` and :class:`PrometheusProvider`, whose
``_query_blocking`` is the one thing replaced) and ``decide`` is called again at the same time; the
decision's actions are applied to a simulated cluster (``tests.domain.world.World``: the canary is
always ready), the route weight it leaves goes to the traffic, and the clock moves on by the
decision's ``requeue_after``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast
from unittest import mock

import aiohttp
import numpy as np

from bench.simulated_prometheus import SimulatedPrometheus
from bench.traffic import Traffic, Version
from canary.config import MetricsSettings
from canary.domain.machine import READINESS_POLL, Decision, NeedProbes, Probe, decide
from canary.domain.spec import CanarySpec
from canary.domain.status import CheckResult, Phase
from canary.domain.weights import next_weight
from canary.kube.api import KubeApi
from canary.kube.cache import ClusterCache
from canary.kube.execute import Target
from canary.kube.observe import Observation
from canary.kube.probes import ProbeRunner
from canary.metrics.batching import BuiltinBatcher
from canary.metrics.engine import MetricsEngine
from canary.metrics.prometheus import PrometheusProvider
from tests.domain.world import World, initialized

NAMESPACE = "bench"
#: The primary serves alone for this long before the new revision is pushed, so its series exist.
WARMUP = timedelta(minutes=2)
#: A run that has not ended after this many nominal durations is stuck.
STUCK_AFTER = 3
#: More reconciliations than any release within its time limit needs, even polled every second.
MAX_RECONCILIATIONS = 10_000
PRIMARY = Version(failure_probability=0.001, median_ms=50.0, p99_ms=200.0)


class Outcome(StrEnum):
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    STUCK = "stuck"


@dataclass(frozen=True)
class Scenario:
    name: str
    rps: float
    canary: Version
    #: How much worse than the primary, for the targets: error points, or the p99 factor.
    error_points: float = 0.0
    latency_factor: float = 1.0

    @property
    def healthy(self) -> bool:
        return self.error_points == 0.0 and self.latency_factor == 1.0


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    cause: str | None
    #: Time from the canary's first traffic to the decision (promotion started or rolled back),
    #: in analysis intervals; None when stuck, or decided before the canary had traffic.
    exposure_intervals: float | None
    #: Requests the canary served, and how many of them failed, before the decision (or the
    #: end of the simulated time when stuck).
    canary_requests: int
    canary_failures: int
    #: The failed checks the status counted when the run ended.
    failed_checks: int
    max_canary_weight: int


def nominal_duration(spec: CanarySpec) -> timedelta:
    """A healthy release's length: one interval per weight step and the one that opens the first."""
    steps, weight = 0, 0
    while (following := next_weight(spec.analysis, weight)) is not None:
        steps, weight = steps + 1, following
    return spec.analysis.interval * (steps + 1)


class _NoKubeApi:
    """The probe runner reads Secrets through the API only for MetricTemplates; builtin checks
    never do, so any use of it here is a bug in the benchmark."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the decision benchmark touched the Kubernetes API ({name})")


class _Answering:
    """Which simulated Prometheus answers the patched provider now (one release at a time)."""

    prometheus: SimulatedPrometheus | None = None


_ACTIVE = _Answering()


def _simulated_query(self: PrometheusProvider, promql: str) -> Any:
    if _ACTIVE.prometheus is None:
        raise AssertionError("a Prometheus query outside a simulated release")
    return _ACTIVE.prometheus.answer(promql)


@contextlib.contextmanager
def simulated_prometheus_http() -> Iterator[None]:
    """Route every PrometheusProvider's HTTP call to the active simulated release."""
    with mock.patch.object(PrometheusProvider, "_query_blocking", _simulated_query):
        yield


class Bench:
    """The shared, real collaborators: one metrics engine and one probe runner for every release."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        settings = MetricsSettings()
        # One release at a time: nothing to batch with, so no batch waits for company (50 ms
        # per tick would add up over thousands of simulated releases).
        self.engine = MetricsEngine(settings, batcher=BuiltinBatcher(window=0.0))
        self.runner = ProbeRunner(cast(KubeApi, _NoKubeApi()), ClusterCache(), session, self.engine, settings)

    def close(self) -> None:
        self.engine.close()

    async def release(self, spec: CanarySpec, scenario: Scenario, seed: np.random.SeedSequence, *,
                      watch_echo: bool = False) -> RunResult:
        """One release from the push of a new revision to its end. ``watch_echo``: as in the
        real controller, a decision that changes the status is followed by another pass at once,
        woken by the watch event of that status write; without it the controller runs only
        when ``decide()`` asked to be woken (``requeue_after``)."""
        world = initialized(spec)
        world.push("rev2")
        started = world.now
        origin = started - WARMUP
        interval = spec.analysis.interval
        limit = started + STUCK_AFTER * nominal_duration(spec)
        traffic = Traffic(np.random.default_rng(seed), rps=scenario.rps, canary=scenario.canary, primary=PRIMARY,
                          horizon=_second(limit - origin) + 1)
        prometheus = SimulatedPrometheus(traffic, namespace=NAMESPACE, canary=spec.target_ref.name,
                                         primary=f"{spec.target_ref.name}-primary")
        target = {"metadata": {"namespace": NAMESPACE, "name": spec.target_ref.name}}
        _ACTIVE.prometheus = prometheus
        traffic.advance_to(_second(started - origin))
        first_traffic: datetime | None = None
        decided: datetime | None = None
        decided_counts = (0, 0)
        max_weight = 0
        try:
            for _ in range(MAX_RECONCILIATIONS):
                before = world.status
                decision = await self._decide(world, spec, target)
                world.status = decision.status
                world.reconciles += 1
                for action in decision.actions:
                    world.apply(action)
                weights = world.route.weights
                weight = weights.canary if world.route.exists and weights is not None else 0
                traffic.set_weight(weight)
                max_weight = max(max_weight, weight)
                if weight > 0 and first_traffic is None:
                    first_traffic = world.now
                if decided is None and world.status.phase in (Phase.PROMOTING, Phase.FAILED):
                    decided = world.now
                    decided_counts = _canary_counts(traffic)
                if decision.outcome is not None:
                    promoted = decision.outcome.promoted
                    cause = None if promoted else str(decision.outcome.cause)
                    outcome = Outcome.PROMOTE if promoted else Outcome.ROLLBACK
                    break
                if watch_echo and decision.status != before:
                    continue
                following = world.now + (decision.requeue_after or READINESS_POLL)
                if following > limit:
                    outcome, cause, decided = Outcome.STUCK, None, None
                    traffic.advance_to(_second(limit - origin))
                    decided_counts = _canary_counts(traffic)
                    break
                traffic.advance_to(_second(following - origin))
                world.now = following
            else:
                raise AssertionError(f"{MAX_RECONCILIATIONS} reconciliations without moving past "
                                     f"{world.now - started}: the controller asks to be woken without delay")
        finally:
            _ACTIVE.prometheus = None
        if world.violations:
            raise AssertionError(f"the simulated cluster saw unsafe actions: {world.violations}")
        exposure = None
        if decided is not None and first_traffic is not None:
            exposure = (decided - first_traffic) / interval
        return RunResult(outcome=outcome, cause=cause, exposure_intervals=exposure,
                         canary_requests=decided_counts[0], canary_failures=decided_counts[1],
                         failed_checks=world.status.failed_checks, max_canary_weight=max_weight)

    async def _decide(self, world: World, spec: CanarySpec, canary: dict[str, Any]) -> Decision:
        observed = world.observe()
        # What the World checks its route changes against: the observation this decision saw.
        world._seen = observed  # noqa: SLF001
        probes: dict[Probe, tuple[CheckResult, ...]] = {}
        for _ in range(8):
            result = decide(spec, world.status, observed, world.now, probes)
            if not isinstance(result, NeedProbes):
                return result
            if result.probes & probes.keys():
                raise AssertionError(f"decide asked again for {sorted(result.probes)}")
            target = Target(canary=canary, spec=spec, router=None, observation=Observation(
                observed=observed, dependencies=frozenset(), route_target=None, configs=frozenset()))
            probes.update(await self.runner.run(result.probes, target, world.status, world.now))
        raise AssertionError("decide kept asking for probes")


def _canary_counts(traffic: Traffic) -> tuple[int, int]:
    series = traffic.canary
    return int(series.requests[traffic.now]), int(series.failures[traffic.now])


def _second(delta: timedelta) -> int:
    seconds = delta.total_seconds()
    if seconds != math.floor(seconds):
        raise ValueError(f"the simulated clock keeps whole seconds; the controller asked for {delta}")
    return int(seconds)
