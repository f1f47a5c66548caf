"""A tiny simulated cluster for driving ``decide`` through whole releases in unit tests.

It applies actions the way the Kubernetes layer would (instantly, or with readiness lagging by
one reconciliation when ``slow`` is set), so tests exercise real sequences of decisions without
an API server. The e2e suite proves the same behaviour against a real one.

The world also checks the safety rules the Kubernetes layer relies on while it applies actions
(``violations``): a route never gives traffic to a canary that the deciding reconciliation saw
unready or that has no replicas, and the canary is never scaled to zero while it has traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from canary.domain.actions import (
    Action, EnsurePrimary, EnsureServices, Event, Notify, PromotePrimary, RestoreTarget, ScaleCanary, SetFinalizer,
    SetRoute,
)
from canary.domain.machine import Decision, Probe, ProbeResults, decide
from canary.domain.observed import Observed, Problem, RouteState, WorkloadState
from canary.domain.spec import CanarySpec, parse_canary_spec
from canary.domain.status import CanaryStatus, CheckKind, CheckResult, Phase, Verdict
from canary.domain.weights import Weights

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_spec(**analysis: Any) -> CanarySpec:
    raw_analysis: dict[str, Any] = {"interval": "1m", "threshold": 2, "stepWeight": 25, "maxWeight": 50}
    raw_analysis.update(analysis)
    extra = raw_analysis.pop("_spec", {})
    raw: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {k: v for k, v in raw_analysis.items() if v is not None},
    }
    raw.update(extra)
    return parse_canary_spec(raw)


def hook(kind: str, name: str | None = None) -> dict[str, Any]:
    """A webhook entry for ``make_spec(webhooks=[...])``."""
    return {"name": name or kind, "type": kind, "url": f"http://hooks.test/{kind}"}


SUCCESS_RATE: dict[str, Any] = {"name": "request-success-rate", "thresholdRange": {"min": 99}}


def check(name: str, verdict: Verdict, kind: CheckKind = CheckKind.METRIC) -> CheckResult:
    return CheckResult(name=name, kind=kind, source="test", verdict=verdict, time=T0)


ProbeAnswer = Callable[[Probe, "World"], tuple[CheckResult, ...]]


def always(verdict: Verdict) -> ProbeAnswer:
    return lambda probe, world: (check(probe.value, verdict),)


def answers(default: Verdict = Verdict.PASS, **by_probe: Verdict) -> ProbeAnswer:
    """Per-probe verdicts by probe name with ``-`` spelled ``_`` (``confirm_promotion=Verdict.FAIL``)."""
    table = {Probe(k.replace("_", "-")): v for k, v in by_probe.items()}
    return lambda probe, world: (check(probe.value, table.get(probe, default)),)


def decide_all(
    spec: CanarySpec, status: CanaryStatus, observed: Observed, now: datetime,
    answer: Callable[[Probe], tuple[CheckResult, ...]] | None = None,
) -> tuple[Decision, list[frozenset[Probe]]]:
    """``decide`` with every probe it asks for answered by ``answer``; returns what it asked too."""
    probes: dict[Probe, tuple[CheckResult, ...]] = {}
    asked: list[frozenset[Probe]] = []
    for _ in range(5):
        result = decide(spec, status, observed, now, probes)
        if isinstance(result, Decision):
            return result, asked
        assert answer is not None, f"decide asked for {sorted(result.probes)} but no answers were given"
        assert not (result.probes & probes.keys()), "decide asked again for a probe it already has"
        asked.append(result.probes)
        for probe in result.probes:
            probes[probe] = answer(probe)
    raise AssertionError("decide kept asking for probes")  # pragma: no cover


def answered(verdict: Verdict) -> Callable[[Probe], tuple[CheckResult, ...]]:
    return lambda probe: (check(probe.value, verdict),)


@dataclass
class World:
    spec: CanarySpec
    target_rev: str = "rev1"
    target_replicas: int = 2
    target_ready: bool = True
    target_exists: bool = True
    primary: WorkloadState = WorkloadState()
    services: bool = False
    route: RouteState = RouteState()
    annotations: dict[str, str] = field(default_factory=dict)
    deleting: bool = False
    finalizer: bool = False
    #: The Canary is gone: it was deleted and no finalizer held it.
    deleted: bool = False
    problem: Problem | None = None
    status: CanaryStatus = CanaryStatus()
    now: datetime = T0
    answer: ProbeAnswer = always(Verdict.PASS)
    primary_healthy: bool = True
    canary_healthy: bool = True
    #: Readiness lags: a workload scaled up, created or rewritten is seen unready by the next
    #: reconciliation and ready by the one after.
    slow: bool = False
    events: list[Event] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    asked: list[frozenset[Probe]] = field(default_factory=list)
    #: (canary weight of the status, probes asked) for every ask.
    asked_at: list[tuple[int, frozenset[Probe]]] = field(default_factory=list)
    route_history: list[Weights] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    #: Scratch space for scripted outside actors (what they did, and when).
    notes: dict[str, Any] = field(default_factory=dict)
    reconciles: int = 0
    target_ready_at: int = 0
    primary_ready_at: int = 0
    _seen: Observed | None = None

    def observe(self) -> Observed:
        target_ready = (
            self.target_ready and self.target_replicas > 0 and self.canary_healthy
            and self.reconciles >= self.target_ready_at
        )
        primary = self.primary
        if primary.exists and self.reconciles < self.primary_ready_at:
            primary = replace(primary, ready=False)
        return Observed(
            generation=1,
            annotations=dict(self.annotations),
            target=WorkloadState(exists=self.target_exists, checksum=self.target_rev if self.target_exists else "",
                                 ready=self.target_exists and target_ready,
                                 replicas=self.target_replicas if self.target_exists else 0),
            primary=primary,
            services_ready=self.services,
            route=self.route,
            deleting=self.deleting,
            finalizer=self.finalizer,
            problem=self.problem,
        )

    def think(self) -> Decision:
        """What the controller decides now, without writing or applying anything."""
        observed = self.observe()
        self._seen = observed

        def ask(probe: Probe) -> tuple[CheckResult, ...]:
            return self.answer(probe, self)

        decision, asked = decide_all(self.spec, self.status, observed, self.now, ask)
        self.asked.extend(asked)
        self.asked_at.extend((self.status.canary_weight, a) for a in asked)
        return decision

    def reconcile(self, *, write: bool = True, apply: int | None = None) -> Decision:
        """One reconciliation. ``write=False``: killed before the status write (nothing happens);
        ``apply=n``: status written, then killed after the first ``n`` actions."""
        decision = self.think()
        self.reconciles += 1
        if not write:
            return decision
        self.status = decision.status
        self.events.extend(decision.events)
        self.decisions.append(decision)
        for action in decision.actions[:apply]:
            self.apply(action)
        return decision

    def apply(self, action: Action) -> None:
        self.actions.append(action)
        lag = self.reconciles + 1 if self.slow else 0
        if isinstance(action, EnsurePrimary):
            self.primary = WorkloadState(exists=True, checksum=self.target_rev, ready=self.primary_healthy,
                                         replicas=action.replicas)
            self.primary_ready_at = lag
        elif isinstance(action, EnsureServices):
            self.services = True
        elif isinstance(action, PromotePrimary):
            if self.target_rev == action.revision:
                self.primary = replace(self.primary, checksum=action.revision, ready=self.primary_healthy)
                self.primary_ready_at = lag
        elif isinstance(action, SetRoute):
            seen = self._seen
            if action.weights.canary > 0 and (seen is None or not seen.target.ready):
                self.violations.append(f"{action} while the deciding reconciliation saw the canary unready")
            if action.weights.canary > 0 and self.target_replicas == 0:
                self.violations.append(f"{action} while the canary has no replicas")
            self.route = RouteState(exists=True, weights=action.weights)
            self.route_history.append(action.weights)
        elif isinstance(action, ScaleCanary):
            if action.replicas == 0 and self.route.exists and self.route.weights is not None \
                    and self.route.weights.canary > 0:
                self.violations.append(f"{action} while the route gives the canary {self.route.weights.canary}%")
            if self.target_replicas == 0 and action.replicas > 0:
                self.target_ready_at = lag
            self.target_replicas = action.replicas
        elif isinstance(action, RestoreTarget):
            self.route = RouteState()
            self.services = False
        elif isinstance(action, SetFinalizer):
            self.finalizer = action.present
            if self.deleting and not action.present:
                self.deleted = True
        elif isinstance(action, Notify):
            pass

    def push(self, revision: str) -> None:
        """A new pod template for the target (a rollout when it has replicas)."""
        self.target_rev = revision
        if self.slow and self.target_replicas > 0:
            self.target_ready_at = self.reconciles + 1

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

    def weights_seen(self) -> list[int]:
        """Distinct consecutive canary weights the status went through."""
        return distinct(d.status.canary_weight for d in self.decisions)


def distinct(values: Iterable[int]) -> list[int]:
    out: list[int] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def phase_is(phase: Phase) -> Callable[[World], bool]:
    return lambda w: w.status.phase is phase


def initialized(spec: CanarySpec, **kwargs: Any) -> World:
    world = World(spec=spec, **kwargs)
    world.reconcile()
    world.run_until(phase_is(Phase.INITIALIZED), step=timedelta(seconds=1))
    world.reconcile()  # scales the target to zero
    return world


def with_status(world: World, **changes: Any) -> World:
    world.status = world.status.with_(**changes)
    return world


def probe_results(verdict: Verdict, *probes: Probe) -> ProbeResults:
    return {p: (check(p.value, verdict),) for p in probes}


Answers = Mapping[Probe, Verdict]


# --- single decisions ----------------------------------------------------------------------------


NOW = T0 + timedelta(hours=1)
INTERVAL = timedelta(minutes=1)


def seen(
    *, ready: bool = True, rev: str = "rev2", replicas: int = 2, primary_rev: str = "rev1",
    primary_ready: bool = True, route: Weights | None = Weights(100, 0), annotations: Mapping[str, str] | None = None,
    deleting: bool = False, problem: Problem | None = None, target_exists: bool = True, services: bool = True,
    primary_exists: bool = True, primary_replicas: int = 2,
) -> Observed:
    """An observation of an initialized canary (primary, Services and route in place)."""
    return Observed(
        generation=3,
        annotations=dict(annotations or {}),
        target=WorkloadState(exists=target_exists, checksum=rev if target_exists else "",
                             ready=ready and target_exists, replicas=replicas if target_exists else 0),
        primary=WorkloadState(exists=primary_exists, checksum=primary_rev if primary_exists else "",
                              ready=primary_ready and primary_exists,
                              replicas=primary_replicas if primary_exists else 0),
        services_ready=services,
        route=RouteState(exists=route is not None, weights=route),
        deleting=deleting,
        problem=problem,
    )


def running(phase: Phase, weight: int = 0, **changes: Any) -> CanaryStatus:
    """A status in the middle of releasing rev2 over rev1, with an analysis due now."""
    base = CanaryStatus(
        phase=phase, canary_weight=weight, last_applied_spec="rev2", last_promoted_spec="rev1",
        last_transition_time=T0, observed_generation=3, last_analysis_time=NOW - INTERVAL, run_started=T0,
        primary_replicas=2,
    )
    return base.with_(**changes)


def idle(phase: Phase = Phase.SUCCEEDED, **changes: Any) -> CanaryStatus:
    base = CanaryStatus(phase=phase, last_applied_spec="rev1", last_promoted_spec="rev1", last_transition_time=T0,
                        observed_generation=3, primary_replicas=2)
    return base.with_(**changes)


def assert_safe(decision: Decision, observed: Observed) -> None:
    """The ordering and routing rules every decision keeps, whatever it decided."""
    actions = list(decision.actions)
    routes = [i for i, a in enumerate(actions) if isinstance(a, SetRoute)]
    assert len(routes) <= 1, actions
    for i in routes:
        route = actions[i]
        assert isinstance(route, SetRoute)
        assert route.weights.primary + route.weights.canary == 100
        if route.weights.canary > 0:
            assert observed.target.ready, f"{route} for an unready canary"
            assert observed.target.checksum == decision.status.last_applied_spec or \
                decision.status.phase is Phase.TERMINATING, f"{route} for a revision nobody analysed"
    for i, a in enumerate(actions):
        if isinstance(a, ScaleCanary) and a.replicas == 0:
            canary_traffic = observed.route.weights is None or observed.route.weights.canary > 0
            if observed.route.exists and canary_traffic:
                assert any(j < i for j in routes), f"scaled to zero before the route moved away: {actions}"
        if isinstance(a, Notify):
            assert all(isinstance(b, Notify) for b in actions[i:]), "notifications go after the cluster changes"
    if decision.requeue_after is not None:
        assert decision.requeue_after >= timedelta(0)
