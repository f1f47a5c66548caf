"""A tiny simulated cluster for driving ``decide`` through whole releases in unit tests.

It applies actions the way the Kubernetes layer would (instantly, or with readiness lagging by
one reconciliation when ``slow`` is set), so tests exercise real sequences of decisions without
an API server. The e2e suite proves the same behaviour against a real one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from canary.domain.actions import (
    Action, EnsurePrimary, EnsureServices, Event, Notify, PromotePrimary, RestoreTarget, ScaleCanary, SetRoute,
)
from canary.domain.machine import Decision, NeedProbes, Probe, decide
from canary.domain.observed import Observed, RouteState, WorkloadState
from canary.domain.spec import CanarySpec, parse_canary_spec
from canary.domain.status import CanaryStatus, CheckKind, CheckResult, Verdict
from canary.domain.weights import Weights

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_spec(**analysis: Any) -> CanarySpec:
    raw_analysis: dict[str, Any] = {"interval": "1m", "threshold": 2, "stepWeight": 25, "maxWeight": 50}
    raw_analysis.update(analysis)
    extra = raw_analysis.pop("_spec", {})
    raw: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": raw_analysis,
    }
    raw.update(extra)
    return parse_canary_spec(raw)


def check(name: str, verdict: Verdict, kind: CheckKind = CheckKind.METRIC) -> CheckResult:
    return CheckResult(name=name, kind=kind, source="test", verdict=verdict, time=T0)


ProbeAnswer = Callable[[Probe, "World"], tuple[CheckResult, ...]]


def always(verdict: Verdict) -> ProbeAnswer:
    return lambda probe, world: (check(probe.value, verdict),)


@dataclass
class World:
    spec: CanarySpec
    target_rev: str = "rev1"
    target_replicas: int = 2
    target_ready: bool = True
    primary: WorkloadState = WorkloadState()
    services: bool = False
    route: RouteState = RouteState()
    annotations: dict[str, str] = field(default_factory=dict)
    deleting: bool = False
    status: CanaryStatus = CanaryStatus()
    now: datetime = T0
    answer: ProbeAnswer = always(Verdict.PASS)
    primary_healthy: bool = True
    canary_healthy: bool = True
    events: list[Event] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    asked: list[frozenset[Probe]] = field(default_factory=list)
    route_history: list[Weights] = field(default_factory=list)

    def observe(self) -> Observed:
        return Observed(
            generation=1,
            annotations=dict(self.annotations),
            target=WorkloadState(exists=True, checksum=self.target_rev,
                                 ready=self.target_ready and self.target_replicas > 0 and self.canary_healthy,
                                 replicas=self.target_replicas),
            primary=self.primary,
            services_ready=self.services,
            route=self.route,
            deleting=self.deleting,
        )

    def reconcile(self) -> Decision:
        observed = self.observe()
        probes: dict[Probe, tuple[CheckResult, ...]] = {}
        for _ in range(5):
            result = decide(self.spec, self.status, observed, self.now, probes)
            if isinstance(result, NeedProbes):
                self.asked.append(result.probes)
                for probe in result.probes:
                    probes[probe] = self.answer(probe, self)
                continue
            break
        else:  # pragma: no cover - a loop here is a bug in decide
            raise AssertionError("decide kept asking for probes")
        assert isinstance(result, Decision)
        self.status = result.status
        self.events.extend(result.events)
        self.decisions.append(result)
        for action in result.actions:
            self.apply(action)
        return result

    def apply(self, action: Action) -> None:
        self.actions.append(action)
        if isinstance(action, EnsurePrimary):
            self.primary = WorkloadState(exists=True, checksum=self.target_rev, ready=self.primary_healthy,
                                         replicas=action.replicas)
        elif isinstance(action, EnsureServices):
            self.services = True
        elif isinstance(action, PromotePrimary):
            if self.target_rev == action.revision:
                self.primary = replace(self.primary, checksum=action.revision, ready=self.primary_healthy)
        elif isinstance(action, SetRoute):
            self.route = RouteState(exists=True, weights=action.weights)
            self.route_history.append(action.weights)
        elif isinstance(action, ScaleCanary):
            self.target_replicas = action.replicas
        elif isinstance(action, RestoreTarget):
            self.route = RouteState()
        elif isinstance(action, Notify):
            pass

    def advance(self, delta: timedelta = timedelta(minutes=1)) -> Decision:
        self.now += delta
        return self.reconcile()

    def run_until(self, done: Callable[[World], bool], *, step: timedelta = timedelta(minutes=1),
                  limit: int = 100) -> None:
        for _ in range(limit):
            if done(self):
                return
            self.advance(step)
        raise AssertionError(f"not done after {limit} steps: {self.status.phase} {self.status.canary_weight}")

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


def initialized(spec: CanarySpec, **kwargs: Any) -> World:
    world = World(spec=spec, **kwargs)
    world.reconcile()
    world.run_until(lambda w: w.status.phase is not None and w.status.phase.value == "Initialized",
                    step=timedelta(seconds=1))
    world.reconcile()  # scales the target to zero
    return world


def with_status(world: World, **changes: Any) -> World:
    world.status = world.status.with_(**changes)
    return world


Answers = Mapping[Probe, Verdict]
