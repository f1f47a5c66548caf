"""The rules a SIGKILL storm is judged by, and its size, seed and figures.

The scenario (``e2e/test_kill_storm.py``) kills the controller at random moments across many
releases; this module says, from what was recorded, whether each release was safe and right:

* **Route weights always add up to the whole** (100, or 1 for v1alpha1's quantity weights), and
  none is negative.
* **No weight on an unready canary.** Over the history of the route and the canary (target)
  Deployment, ordered by resourceVersion (see :mod:`e2e.harness.route_watch`), no state may give
  the canary a weight above 0 while the Deployment, as last written before that state, is not
  ready. "Ready" is ``kubectl rollout status``'s rule plus at least one replica, the rule the
  controller documents for serving (docs/design.md, "desired_route"). **No grace is allowed**:
  the controller promises to move the route before it scales the canary down and to give weight
  only after it observed the canary ready, so in the API server's order of writes the route
  change always comes first (scale-down) or last (scale-up). A grace period would only be
  needed if something else made the canary unready mid-run (a crashing Pod, a node loss); the
  storm does not, so the only writer that can break the rule is the controller.
* **Outcome**: a faulty release never reaches ``Succeeded`` (in any recorded state of its
  revision, not only at the end) and its version never reaches the primary; a healthy one ends
  ``Succeeded`` with its version on the primary.
* **Bounded**: each release ends within :func:`release_bound` of being shipped.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from e2e.harness import app
from e2e.harness.route_watch import Change

#: Full-size storm under ``make chaos`` (``E2E_CHAOS=full``, the fault suite's size switch);
#: ``CANARY_CHAOS_RELEASES`` overrides both sizes.
RELEASES_ENV = "CANARY_CHAOS_RELEASES"
SEED_ENV = "CANARY_CHAOS_SEED"
FULL_SIZE_ENV = "E2E_CHAOS"
FAST_RELEASES = 3
FULL_RELEASES = 20

#: The controller's Lease (canary.config.LeaderElectionSettings.lease_duration): a restarted
#: controller waits this long for its SIGKILLed predecessor's Lease to expire.
LEASE_SECONDS = 15.0
#: Start-up after the Lease is free: kopf's initial lists, the caches, the first reconcile.
RESTART_ALLOWANCE_SECONDS = 20.0
#: Before a release's first tick can count: canary Pods scheduled and ready, Prometheus scraping
#: enough samples (minSampleSize) in the metric window, the promotion's primary rollout after.
FIXED_ALLOWANCE_SECONDS = 45.0
#: A tick is due every interval, but a loaded machine (two cores, a busy API server) runs late.
TICK_SLOWDOWN = 3.0
#: Ticks besides the weight steps and the failure threshold: the tick at maxWeight that
#: promotes, Promoting, Finalising, and one tick of held (not yet enough) data.
EXTRA_TICKS = 4


def storm_releases() -> int:
    value = os.environ.get(RELEASES_ENV, "").strip()
    if value:
        return max(1, int(value))
    return FULL_RELEASES if os.environ.get(FULL_SIZE_ENV, "").strip().lower() == "full" else FAST_RELEASES


def storm_seed() -> int:
    value = os.environ.get(SEED_ENV, "").strip()
    return int(value) if value else secrets.randbits(32)


# --- the release's shape and its time bound ------------------------------------------------


@dataclass(frozen=True)
class ReleasePlan:
    app: str
    version: str
    faulty: bool
    error_rate: float
    interval_s: int
    threshold: int
    step_weight: int
    max_weight: int

    @property
    def steps(self) -> int:
        return math.ceil(self.max_weight / self.step_weight)


def release_bound(plan: ReleasePlan, kills: int) -> float:
    """Seconds a release may take from its shipping to its end, from its spec and the kills it saw.

    Each analysis tick is due every ``interval``; a healthy release needs one passing tick per
    weight step, a faulty one ``threshold`` failing ticks (and may first pass a step or more).
    Each kill costs the dead controller's Lease plus a restart.
    """
    ticks = plan.steps + plan.threshold + EXTRA_TICKS
    return (FIXED_ALLOWANCE_SECONDS + TICK_SLOWDOWN * plan.interval_s * ticks
            + kills * (LEASE_SECONDS + RESTART_ALLOWANCE_SECONDS))


# --- reading the recorded objects ----------------------------------------------------------


def route_percent(split: Mapping[str, Any]) -> dict[str, Decimal]:
    """A TrafficSplit's weights in percent per backend Service, read off the raw object.

    v1alpha1 weights are quantities read as fractions of one; later versions' are numbers of 100.
    """
    unit = Decimal(1) if str(split.get("apiVersion", "")).endswith("/v1alpha1") else Decimal(100)
    out: dict[str, Decimal] = {}
    for backend in (split.get("spec") or {}).get("backends") or []:
        weight: Decimal = parse_quantity(str(backend.get("weight", 0)))  # type: ignore[no-untyped-call]
        out[str(backend.get("service"))] = weight * 100 / unit
    return out


def deployment_ready(dep: Mapping[str, Any]) -> tuple[bool, str]:
    """Rolled out as ``kubectl rollout status`` says, with at least one replica; else why not.

    Written here from the Deployment API, not imported from the controller, so a bug in the
    controller's own readiness rule cannot hide in the check.
    """
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    if want == 0:
        return False, "scaled to 0"
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return False, "spec not yet observed by the Deployment controller"
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < want:
        return False, f"{updated}/{want} updated"
    if total > updated:
        return False, f"{total - updated} old replicas left"
    if available < updated:
        return False, f"{available}/{updated} available"
    return True, ""


def template_version(dep: Mapping[str, Any]) -> str | None:
    annotations = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    value = annotations.get(app.VERSION)
    return None if value is None else str(value)


@dataclass(frozen=True)
class Violation:
    rv: int
    at: float
    app: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.app} rv {self.rv}: {self.rule}: {self.detail}"


def route_violations(history: Sequence[Change], apex: str) -> list[Violation]:
    """Every state, in write order, where ``apex``'s route breaks a weight rule (see module doc).

    The canary Service is ``<apex>-canary`` and selects the target Deployment ``<apex>``.
    """
    canary_service = f"{apex}-canary"
    route: Change | None = None
    target: Change | None = None
    out: list[Violation] = []
    for change in history:
        if change.name != apex or change.kind not in ("TrafficSplit", "Deployment"):
            continue
        current = None if change.type == "DELETED" else change
        if change.kind == "TrafficSplit":
            route = current
        else:
            target = current
        if route is None:
            continue
        percent = route_percent(route.body)
        total = sum(percent.values(), Decimal(0))
        if total != 100 or any(p < 0 for p in percent.values()):
            out.append(Violation(change.rv, change.at, apex, "weights do not add up to 100",
                                 f"{ {k: str(v) for k, v in percent.items()} }"))
        if percent.get(canary_service, Decimal(0)) > 0:
            ready, why = (False, "Deployment absent") if target is None else deployment_ready(target.body)
            if not ready:
                out.append(Violation(change.rv, change.at, apex, "weight on an unready canary",
                                     f"{canary_service} at {percent[canary_service]}% while {apex}: {why} "
                                     f"(route rv {route.rv}, Deployment rv {target.rv if target else '-'})"))
    return out


def route_states(history: Sequence[Change], apex: str) -> tuple[int, int]:
    """How many recorded states of ``apex``'s route there were, and how many gave the canary
    weight: the evidence that :func:`route_violations` had something to judge."""
    states = [c for c in history if c.kind == "TrafficSplit" and c.name == apex and c.type != "DELETED"]
    weighted = sum(1 for c in states if route_percent(c.body).get(f"{apex}-canary", Decimal(0)) > 0)
    return len(states), weighted


def phases_of(history: Sequence[Change], apex: str, revision: str) -> list[str]:
    """The Canary's phases, in write order, while ``status.lastAppliedSpec`` was ``revision``."""
    out: list[str] = []
    for change in history:
        if change.kind != "Canary" or change.name != apex:
            continue
        status = change.body.get("status") or {}
        if status.get("lastAppliedSpec") == revision:
            phase = str(status.get("phase"))
            if not out or out[-1] != phase:
                out.append(phase)
    return out


def primary_versions(history: Sequence[Change], apex: str) -> list[str | None]:
    """The primary Deployment's template versions, in write order (repeats collapsed)."""
    out: list[str | None] = []
    for change in history:
        if change.kind == "Deployment" and change.name == f"{apex}-primary" and change.type != "DELETED":
            version = template_version(change.body)
            if not out or out[-1] != version:
                out.append(version)
    return out


# --- figures -------------------------------------------------------------------------------


@dataclass
class ReleaseResult:
    plan: ReleasePlan
    revision: str = ""
    shipped_at: float = 0.0
    ended_at: float | None = None
    final_phase: str = ""
    phases: list[str] = field(default_factory=list)
    kills: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.shipped_at

    @property
    def bound(self) -> float:
        return release_bound(self.plan, self.kills)

    def judge(self, primary_history: Sequence[str | None]) -> None:
        """Fill ``problems`` with what went wrong in this release (empty: it was right)."""
        plan = self.plan
        if self.ended_at is None:
            self.problems.append(f"did not end within {self.bound:.0f}s (phases {self.phases})")
        elif self.duration is not None and self.duration > self.bound:
            self.problems.append(f"took {self.duration:.1f}s, over its bound {self.bound:.0f}s")
        if plan.faulty:
            if "Succeeded" in self.phases:
                self.problems.append(f"faulty release reached Succeeded: {self.phases}")
            if plan.version in primary_history:
                self.problems.append(f"faulty version {plan.version} reached the primary: {primary_history}")
            if self.ended_at is not None and self.final_phase != "Failed":
                self.problems.append(f"faulty release ended {self.final_phase}, not Failed")
        else:
            if self.ended_at is not None and self.final_phase != "Succeeded":
                self.problems.append(f"healthy release ended {self.final_phase}: {self.phases}")
            if self.ended_at is not None and plan.version not in primary_history:
                self.problems.append(f"healthy version {plan.version} is not on the primary: {primary_history}")

    def line(self) -> str:
        p = self.plan
        took = "-" if self.duration is None else f"{self.duration:5.1f}s"
        verdict = "ok" if not self.problems else "WRONG: " + "; ".join(self.problems)
        return (f"{p.app} v{p.version} {'faulty' if p.faulty else 'healthy':7} interval {p.interval_s}s "
                f"steps {p.steps} threshold {p.threshold} kills {self.kills} -> {self.final_phase or '?':9} "
                f"in {took} (bound {self.bound:.0f}s) {verdict}")


@dataclass
class StormFigures:
    seed: int
    releases: list[ReleaseResult] = field(default_factory=list)
    kills: int = 0
    violations: list[Violation] = field(default_factory=list)
    watch_gaps: int = 0
    route_states: int = 0
    weighted_states: int = 0
    #: What the data plane says on the same question: requests the proxy sent towards the canary
    #: Service and had to answer 503 itself (no ready Pod). Reported, not asserted: the proxy
    #: learns of Pods and routes through watches of its own, so its view can lag the writes.
    canary_503s: int = 0

    @property
    def wrong_outcomes(self) -> int:
        return sum(1 for r in self.releases if r.problems)

    def summary(self) -> str:
        durations = [r.duration for r in self.releases if r.duration is not None]
        longest = f"{max(durations):.1f}s" if durations else "-"
        ratios = [r.duration / r.bound for r in self.releases if r.duration is not None]
        tightest = f"{max(ratios):.2f}" if ratios else "-"
        faulty = sum(1 for r in self.releases if r.plan.faulty)
        return (f"kill storm (seed {self.seed}, set {SEED_ENV} to replay): {len(self.releases)} releases "
                f"({faulty} faulty), {self.kills} SIGKILLs ({sum(r.kills for r in self.releases)} release-kills), "
                f"{sum(1 for r in self.releases if not r.kills)} releases no kill hit, {self.wrong_outcomes} wrong outcomes, {len(self.violations)} route violations, "
                f"{self.watch_gaps} watch gaps, {self.route_states} route states judged "
                f"({self.weighted_states} with canary weight), {self.canary_503s} proxy 503s towards a canary, longest release {longest}, "
                f"largest share of its bound used {tightest}")

    def report(self) -> str:
        lines = [self.summary(), *(r.line() for r in self.releases), *(str(v) for v in self.violations[:20])]
        return "\n".join(lines)
