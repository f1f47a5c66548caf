"""One decision per phase, across target readiness, probe verdicts and the no-data policy.

Each case builds a status and an observation by hand, answers every probe ``decide`` asks for
with one verdict, and checks the next status, the route and the actions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from canary.domain.actions import Notify, PromotePrimary, ScaleCanary, SetRoute
from canary.domain.machine import READINESS_POLL, Decision, Probe, RollbackCause
from canary.domain.observed import Observed
from canary.domain.spec import CanarySpec, NoDataPolicy, WebhookType
from canary.domain.status import CanaryStatus, Phase, Verdict
from canary.domain.weights import ALL_PRIMARY, Weights
from tests.domain.world import (
    INTERVAL, NOW, SUCCESS_RATE, answered, assert_safe, decide_all, hook, make_spec, running, seen,
)

SOURCES: dict[str, dict[str, Any]] = {
    "metrics": {"metrics": [SUCCESS_RATE]},
    "webhook": {"webhooks": [hook("rollout")]},
    "metrics+webhook": {"metrics": [SUCCESS_RATE], "webhooks": [hook("rollout")]},
}
VERDICTS = list(Verdict)
POLICIES = list(NoDataPolicy)


def spec_for(source: str, policy: NoDataPolicy = NoDataPolicy.HOLD, **extra: Any) -> CanarySpec:
    return make_spec(noDataPolicy=policy.value, **SOURCES[source], **extra)


def run(spec: CanarySpec, status: CanaryStatus, observed: Observed, verdict: Verdict = Verdict.PASS,
        ) -> tuple[Decision, set[Probe]]:
    decision, asked = decide_all(spec, status, observed, NOW, answered(verdict))
    assert_safe(decision, observed)
    return decision, set().union(*asked) if asked else set()


def expected_outcome(verdict: Verdict, policy: NoDataPolicy) -> str:
    if verdict is Verdict.PASS:
        return "advance"
    if verdict is Verdict.NO_DATA and policy is NoDataPolicy.HOLD:
        return "hold"
    if verdict is Verdict.UNAVAILABLE:
        return "hold"  # the first tick of an outage, far below consecutiveErrorLimit
    return "fail"


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


# --- Progressing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("failed", [0, 1], ids=["0-failed", "1-failed"])
@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"nodata-{p}")
@pytest.mark.parametrize("verdict", VERDICTS, ids=str)
@pytest.mark.parametrize("ready", [True, False], ids=["ready", "unready"])
@pytest.mark.parametrize("weight", [0, 25, 50], ids=lambda w: f"w{w}")
@pytest.mark.parametrize("source", list(SOURCES))
def test_progressing(source: str, weight: int, ready: bool, verdict: Verdict, policy: NoDataPolicy,
                     failed: int) -> None:
    spec = spec_for(source, policy)
    status = running(Phase.PROGRESSING, weight, failed_checks=failed)
    observed = seen(ready=ready, route=Weights.canary_at(weight))
    decision, asked = run(spec, status, observed, verdict)
    new = decision.status
    route = [a.weights for a in decision.actions if isinstance(a, SetRoute)]

    if not ready:
        # Waits for the canary (progress deadline clock starts) and takes its traffic away.
        assert asked == set()
        assert new.phase is Phase.PROGRESSING
        assert (new.canary_weight, new.failed_checks) == (weight, failed)
        assert new.waiting_since == NOW
        assert route == ([ALL_PRIMARY] if weight else [])
        assert decision.requeue_after == READINESS_POLL
        assert decision.events == ()
        return

    wanted = set()
    if "metrics" in source and weight > 0:
        wanted.add(Probe.METRICS)
    if "webhook" in source:
        wanted.add(Probe.ROLLOUT_HOOKS)
    assert asked == wanted
    outcome = expected_outcome(verdict, policy) if wanted else "advance"
    assert new.last_analysis_time == NOW
    assert [c.verdict for c in new.checks] == [verdict] * len(wanted)

    if outcome == "advance":
        assert new.failed_checks == failed
        if weight < 50:
            assert new.phase is Phase.PROGRESSING
            assert new.canary_weight == weight + 25
            assert route == [Weights.canary_at(weight + 25)]
            assert reasons(decision) == ["Advanced"]
            assert decision.requeue_after == INTERVAL
        else:
            assert new.phase is Phase.PROMOTING
            assert new.canary_weight == 50
            assert route == []
            assert decision.actions == (PromotePrimary("rev2"),)
            assert reasons(decision) == ["Promoting"]
            assert new.last_transition_time == NOW
    elif outcome == "hold":
        assert (new.phase, new.canary_weight, new.failed_checks) == (Phase.PROGRESSING, weight, failed)
        assert decision.actions == ()
        assert reasons(decision) == ["MetricsUnavailable" if verdict is Verdict.UNAVAILABLE else "NoTraffic"]
        assert decision.requeue_after == INTERVAL
    elif failed + 1 < spec.analysis.threshold:
        assert (new.phase, new.canary_weight, new.failed_checks) == (Phase.PROGRESSING, weight, failed + 1)
        assert decision.actions == ()
        assert reasons(decision) == ["CheckFailed"]
        assert decision.events[0].warning
    else:
        assert new.phase is Phase.FAILED
        assert (new.canary_weight, new.failed_checks) == (0, failed + 1)
        assert "reached the threshold 2" in new.message
        expected = ([SetRoute(ALL_PRIMARY)] if weight else []) + [ScaleCanary(0), Notify(WebhookType.POST_ROLLOUT)]
        assert list(decision.actions) == expected
        assert reasons(decision) == ["RolledBack"]
        assert decision.outcome is not None and decision.outcome.cause == RollbackCause.THRESHOLD.value
        assert decision.outcome.started == status.run_started and not decision.outcome.promoted


@pytest.mark.parametrize("ready", [True, False], ids=["ready", "unready"])
@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("elapsed", [timedelta(0), timedelta(seconds=1), timedelta(seconds=59)],
                         ids=["just-ticked", "1s", "59s"])
def test_progressing_between_ticks_asks_nothing(elapsed: timedelta, source: str, ready: bool) -> None:
    status = running(Phase.PROGRESSING, 25, last_analysis_time=NOW - elapsed)
    observed = seen(ready=ready, route=Weights.canary_at(25))
    decision, asked = run(spec_for(source), status, observed)
    assert asked == set()
    assert decision.status.canary_weight == 25
    assert decision.status.last_analysis_time == NOW - elapsed
    if ready:
        assert decision.actions == ()
        assert decision.requeue_after == INTERVAL - elapsed
        assert decision.status == status.with_(conditions=decision.status.conditions)


# --- Waiting for promotion --------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"nodata-{p}")
@pytest.mark.parametrize("gate", VERDICTS, ids=lambda v: f"gate-{v}")
@pytest.mark.parametrize("verdict", VERDICTS, ids=lambda v: f"checks-{v}")
@pytest.mark.parametrize("phase", [Phase.PROGRESSING, Phase.WAITING_PROMOTION], ids=str)
def test_confirm_promotion_at_max_weight(phase: Phase, verdict: Verdict, gate: Verdict, policy: NoDataPolicy) -> None:
    spec = make_spec(noDataPolicy=policy.value, metrics=[SUCCESS_RATE], webhooks=[hook("confirm-promotion")])
    status = running(phase, 50)
    observed = seen(route=Weights.canary_at(50))

    def answer(probe: Probe) -> tuple[Any, ...]:
        return answered(gate if probe is Probe.CONFIRM_PROMOTION else verdict)(probe)

    decision, asked = decide_all(spec, status, observed, NOW, answer)
    assert_safe(decision, observed)
    new = decision.status
    outcome = expected_outcome(verdict, policy)
    assert asked[0] == {Probe.METRICS}
    if outcome != "advance":
        # The gate is only asked once the analysis passed.
        assert len(asked) == 1
        assert new.phase in (phase, Phase.FAILED)
        return
    assert asked[1:] == [{Probe.CONFIRM_PROMOTION}]
    if gate is Verdict.PASS:
        assert new.phase is Phase.PROMOTING
        assert decision.actions == (PromotePrimary("rev2"),)
    else:
        assert new.phase is Phase.WAITING_PROMOTION
        assert new.canary_weight == 50
        assert decision.actions == ()
        assert reasons(decision) == ([] if phase is Phase.WAITING_PROMOTION else ["WaitingPromotion"])
        assert decision.requeue_after == INTERVAL
        assert new.last_transition_time == (status.last_transition_time if phase is Phase.WAITING_PROMOTION else NOW)
    assert [c.verdict for c in new.checks] == [verdict, gate]


# --- Promoting --------------------------------------------------------------------------------------

#: name -> (revision the primary runs, primary ready)
PRIMARY_STATES: dict[str, tuple[str, bool]] = {
    "not-copied": ("rev1", True),
    "copied-unready": ("rev2", False),
    "copied-ready": ("rev2", True),
}


@pytest.mark.parametrize("promotion_step", [None, 20], ids=["one-go", "steps-of-20"])
@pytest.mark.parametrize("verdict", VERDICTS, ids=str)
@pytest.mark.parametrize("ready", [True, False], ids=["canary-ready", "canary-unready"])
@pytest.mark.parametrize("primary", list(PRIMARY_STATES))
def test_promoting(primary: str, ready: bool, verdict: Verdict, promotion_step: int | None) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], webhooks=[hook("rollout")], stepWeightPromotion=promotion_step)
    status = running(Phase.PROMOTING, 50, last_analysis_time=NOW - INTERVAL)
    primary_rev, primary_ready = PRIMARY_STATES[primary]
    observed = seen(ready=ready, route=Weights.canary_at(50), primary_rev=primary_rev, primary_ready=primary_ready)
    decision, asked = run(spec, status, observed, verdict)
    new = decision.status
    route = [a.weights for a in decision.actions if isinstance(a, SetRoute)]
    assert asked == set(), "promotion asks no probes: the verdict must not matter"
    if primary != "copied-ready":
        assert new.phase is Phase.PROMOTING and new.canary_weight == 50
        assert new.waiting_since == NOW
        copy = [PromotePrimary("rev2")] if primary == "not-copied" else []
        assert [a for a in decision.actions if isinstance(a, PromotePrimary)] == copy
        assert route == ([] if ready else [ALL_PRIMARY])
        assert decision.requeue_after == READINESS_POLL
        return
    if promotion_step is None:
        assert new.phase is Phase.FINALISING and new.canary_weight == 0
        assert list(decision.actions) == [SetRoute(ALL_PRIMARY), ScaleCanary(0)]
        assert reasons(decision) == ["Finalising"]
    else:
        assert new.phase is Phase.PROMOTING and new.canary_weight == 30
        assert route == [Weights.canary_at(30) if ready else ALL_PRIMARY]
        assert reasons(decision) == ["Advanced"]
        assert decision.requeue_after == INTERVAL
    assert new.waiting_since is None


@pytest.mark.parametrize("weight, lower, phase", [(50, 30, Phase.PROMOTING), (30, 10, Phase.PROMOTING),
                                                  (10, 0, Phase.FINALISING), (20, 0, Phase.FINALISING)])
def test_promotion_steps_reach_zero_then_finalise(weight: int, lower: int, phase: Phase) -> None:
    spec = make_spec(stepWeightPromotion=20)
    status = running(Phase.PROMOTING, weight)
    observed = seen(primary_rev="rev2", route=Weights.canary_at(weight))
    decision, _ = run(spec, status, observed)
    assert (decision.status.phase, decision.status.canary_weight) == (phase, lower)
    assert [a for a in decision.actions if isinstance(a, SetRoute)] == [SetRoute(Weights.canary_at(lower))]


def test_promotion_steps_wait_one_interval() -> None:
    spec = make_spec(stepWeightPromotion=20)
    status = running(Phase.PROMOTING, 50, last_analysis_time=NOW - timedelta(seconds=20))
    decision, _ = run(spec, status, seen(primary_rev="rev2", route=Weights.canary_at(50)))
    assert decision.status.canary_weight == 50
    assert decision.actions == ()
    assert decision.requeue_after == timedelta(seconds=40)


# --- Finalising -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ready", [True, False], ids=["canary-ready", "canary-unready"])
@pytest.mark.parametrize("replicas", [0, 2], ids=["scaled-down", "scaled-up"])
@pytest.mark.parametrize("route", [ALL_PRIMARY, Weights(50, 50), None], ids=["100-0", "50-50", "no-route"])
def test_finalising(route: Weights | None, replicas: int, ready: bool) -> None:
    spec = make_spec()
    status = running(Phase.FINALISING, 0)
    observed = seen(ready=ready and replicas > 0, replicas=replicas, route=route, primary_rev="rev2")
    decision, _ = run(spec, status, observed)
    done = route == ALL_PRIMARY and replicas == 0
    if done:
        assert decision.status.phase is Phase.SUCCEEDED
        assert decision.status.last_promoted_spec == "rev2"
        assert decision.status.message == "promoted"
        assert decision.actions == (Notify(WebhookType.POST_ROLLOUT),)
        assert decision.outcome is not None and decision.outcome.promoted and decision.outcome.cause is None
        assert reasons(decision) == ["Succeeded"]
    else:
        assert decision.status.phase is Phase.FINALISING
        expected = ([SetRoute(ALL_PRIMARY)] if route != ALL_PRIMARY else []) + ([ScaleCanary(0)] if replicas else [])
        assert list(decision.actions) == expected
        assert decision.requeue_after == READINESS_POLL
        assert decision.outcome is None


# --- every phase, every readiness, every verdict: the safety rules ---------------------------------

ALL_PHASES = [None, *Phase]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"nodata-{p}")
@pytest.mark.parametrize("verdict", VERDICTS, ids=str)
@pytest.mark.parametrize("ready", [True, False], ids=["ready", "unready"])
@pytest.mark.parametrize("phase", ALL_PHASES, ids=str)
def test_every_phase_readiness_and_verdict(phase: Phase | None, ready: bool, verdict: Verdict,
                                                       policy: NoDataPolicy) -> None:
    spec = make_spec(noDataPolicy=policy.value, metrics=[SUCCESS_RATE],
                     webhooks=[hook(k.value) for k in WebhookType if k not in (WebhookType.EVENT,)])
    status = running(phase, 25) if phase is not None else CanaryStatus()
    observed = seen(ready=ready, route=Weights.canary_at(25), deleting=phase in (Phase.TERMINATING,
                                                                                     Phase.TERMINATED))
    decision, asked = run(spec, status, observed, verdict)
    new = decision.status
    assert new.observed_generation == 3
    assert 0 <= new.canary_weight <= 50
    # Every webhook is configured, so a Pass from the rollback webhook rolls an analysed canary back.
    analysed = phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION) and ready
    if phase is None:
        expected = Phase.INITIALIZING  # the route is not at 100/0 yet
    elif phase is Phase.WAITING:
        expected = Phase.PROGRESSING if verdict is Verdict.PASS else Phase.WAITING
    elif analysed and verdict is Verdict.PASS:
        expected = Phase.FAILED
    else:
        expected = phase
    assert new.phase is expected
    counted = analysed and expected_outcome(verdict, policy) == "fail"
    assert new.failed_checks == (1 if counted else 0)
    if not ready:
        assert Probe.METRICS not in asked
        assert all(a.weights.canary == 0 for a in decision.actions if isinstance(a, SetRoute))
    # Only the release phases keep traffic on the canary; all others route it to the primary.
    if new.phase not in (Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING, Phase.TERMINATING):
        assert all(a.weights == ALL_PRIMARY for a in decision.actions if isinstance(a, SetRoute))


# --- details ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("primary_replicas, canary_replicas", [(0, 1), (1, 1), (7, 7)])
def test_a_run_scales_the_canary_like_the_primary_is_now(primary_replicas: int, canary_replicas: int) -> None:
    # The primary may have been scaled (by hand or an HPA) since initialisation.
    status = CanaryStatus(phase=Phase.SUCCEEDED, last_applied_spec="rev1", last_promoted_spec="rev1",
                          primary_replicas=2)
    observed = seen(ready=False, replicas=0, primary_replicas=primary_replicas)
    decision, _ = run(make_spec(), status, observed)
    assert decision.status.primary_replicas == canary_replicas
    assert decision.actions == (ScaleCanary(canary_replicas),)


@pytest.mark.parametrize("phase, weight, observed_kwargs", [
    (Phase.PROGRESSING, 0, {"route": ALL_PRIMARY}),  # advances
    (Phase.PROGRESSING, 25, {"route": Weights(75, 25), "rev": "rev3"}),  # restarts
    (Phase.PROGRESSING, 25, {"route": Weights(75, 25), "ready": False}),  # waits
    (Phase.WAITING_PROMOTION, 50, {"route": Weights(50, 50)}),  # re-checks the gate
    (Phase.PROMOTING, 50, {"route": Weights(50, 50), "primary_ready": False, "primary_rev": "rev2"}),
], ids=["advance", "restart", "wait", "gate-recheck", "promotion-wait"])
def test_staying_in_a_phase_keeps_its_transition_time(phase: Phase, weight: int, observed_kwargs: Any) -> None:
    spec = make_spec(webhooks=[hook("confirm-promotion")])
    status = running(phase, weight)
    decision, _ = decide_all(spec, status, seen(**observed_kwargs), NOW, answered(Verdict.FAIL))
    assert decision.status.phase is phase
    assert decision.status.last_transition_time == status.last_transition_time


def test_blue_green_promotes_in_one_go_even_with_promotion_steps() -> None:
    # There is no canary traffic to step down from.
    spec = make_spec(stepWeight=None, maxWeight=None, iterations=2, stepWeightPromotion=20)
    status = running(Phase.PROMOTING, 0, last_analysis_time=NOW)
    decision, _ = run(spec, status, seen(primary_rev="rev2", replicas=2))
    assert decision.status.phase is Phase.FINALISING
    assert reasons(decision) == ["Finalising"]
