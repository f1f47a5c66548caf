"""Whole releases in the simulated cluster: promotion, rollback, restarts and reverts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from canary.domain.actions import Notify, PromotePrimary, ScaleCanary, SetRoute
from canary.domain.machine import Probe, RollbackCause
from canary.domain.spec import CanarySpec, WebhookType
from canary.domain.status import Phase, Verdict
from canary.domain.weights import ALL_PRIMARY, Weights
from tests.domain.world import (
    SUCCESS_RATE, World, always, answers, check, distinct, hook, initialized, make_spec, phase_is,
)

STRATEGIES: dict[str, tuple[dict[str, Any], list[int], list[int]]] = {
    # id: (analysis, canary weights of the status, canary weights of the route)
    "step-25": ({}, [0, 25, 50, 0], [0, 25, 50, 0]),
    "step-10-max-30": ({"stepWeight": 10, "maxWeight": 30}, [0, 10, 20, 30, 0], [0, 10, 20, 30, 0]),
    "step-20-capped": ({"stepWeight": 20, "maxWeight": 50}, [0, 20, 40, 50, 0], [0, 20, 40, 50, 0]),
    "step-weights": ({"stepWeight": None, "maxWeight": None, "stepWeights": [1, 10, 60]}, [0, 1, 10, 60, 0],
                     [0, 1, 10, 60, 0]),
    "promotion-steps": ({"stepWeightPromotion": 20}, [0, 25, 50, 30, 10, 0], [0, 25, 50, 30, 10, 0]),
    "blue-green": ({"stepWeight": None, "maxWeight": None, "iterations": 3}, [0], [0]),
}


def release(spec: CanarySpec, *, slow: bool = False, answer: Any = None) -> World:
    world = initialized(spec, slow=slow, answer=answer or always(Verdict.PASS))
    world.route_history.clear()
    world.decisions.clear()
    world.events.clear()
    world.actions.clear()
    world.push("rev2")
    return world


def done(world: World) -> bool:
    return world.status.phase in (Phase.SUCCEEDED, Phase.FAILED)


@pytest.mark.parametrize("slow", [False, True], ids=["instant", "slow"])
@pytest.mark.parametrize("with_metrics", [False, True], ids=["no-metrics", "metrics"])
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_a_release_promotes(strategy: str, with_metrics: bool, slow: bool) -> None:
    analysis, status_weights, route_weights = STRATEGIES[strategy]
    spec = make_spec(**analysis, metrics=[SUCCESS_RATE] if with_metrics else [])
    world = release(spec, slow=slow)
    world.run_until(done, step=timedelta(seconds=30))
    assert world.status.phase is Phase.SUCCEEDED
    assert (world.status.last_applied_spec, world.status.last_promoted_spec) == ("rev2", "rev2")
    assert world.status.canary_weight == 0 and world.status.message == "promoted"
    assert world.primary.checksum == "rev2"
    assert world.route.weights == ALL_PRIMARY and world.target_replicas == 0
    assert world.violations == []
    assert world.weights_seen() == status_weights
    assert distinct(w.canary for w in world.route_history) == route_weights[1:] or \
        distinct(w.canary for w in world.route_history) == route_weights
    reasons = world.reasons()
    assert reasons[0] == "Started" and reasons[-1] == "Succeeded"
    assert reasons.count("Promoting") == 1 and reasons.count("Finalising") == 1
    assert "RouteRestored" not in reasons, "our own transitions are not drift"
    assert [a for a in world.actions if isinstance(a, Notify)] == [Notify(WebhookType.POST_ROLLOUT)]
    assert [a for a in world.actions if isinstance(a, PromotePrimary)] == [PromotePrimary("rev2")]
    outcomes = [d.outcome for d in world.decisions if d.outcome is not None]
    assert len(outcomes) == 1 and outcomes[0].promoted and outcomes[0].started is not None
    metric_weights = [w for w, asked in world.asked_at if Probe.METRICS in asked]
    if not with_metrics:
        assert metric_weights == []
    elif spec.analysis.blue_green:
        assert metric_weights == [0, 0, 0], "blue/green checks the canary without giving it traffic"
    else:
        assert metric_weights == status_weights[1:status_weights.index(max(status_weights)) + 1], \
            "one check at every weight above 0%, none at 0%"
    # Nothing moves once it is over.
    before = world.status
    world.advance(timedelta(minutes=10))
    assert world.decisions[-1].actions == () and world.status == before


@pytest.mark.parametrize("threshold", [1, 2, 3])
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_a_release_rolls_back_at_the_threshold(strategy: str, threshold: int) -> None:
    analysis, _, _ = STRATEGIES[strategy]
    spec = make_spec(**analysis, threshold=threshold, metrics=[SUCCESS_RATE], webhooks=[hook("rollout")])
    world = release(spec, answer=always(Verdict.FAIL))
    world.run_until(done)
    assert world.status.phase is Phase.FAILED
    assert world.status.failed_checks == threshold
    assert world.status.last_promoted_spec == "rev1" and world.primary.checksum == "rev1"
    assert world.route.weights == ALL_PRIMARY and world.target_replicas == 0
    assert world.reasons().count("CheckFailed") == threshold - 1
    assert world.reasons()[-1] == "RolledBack"
    assert world.violations == []
    last = world.decisions[-1]
    assert last.outcome is not None and last.outcome.cause == RollbackCause.THRESHOLD.value
    assert last.actions[-1] == Notify(WebhookType.POST_ROLLOUT)
    assert not any(isinstance(a, PromotePrimary) for a in world.actions)


def test_rollback_after_some_steps_routes_back_before_scaling_down() -> None:
    spec = make_spec(stepWeight=10, maxWeight=50, metrics=[SUCCESS_RATE])
    world = release(spec)
    world.run_until(lambda w: w.status.canary_weight == 30)
    world.answer = always(Verdict.FAIL)
    world.run_until(done)
    rollback = world.decisions[-1]
    assert list(rollback.actions) == [SetRoute(ALL_PRIMARY), ScaleCanary(0), Notify(WebhookType.POST_ROLLOUT)]
    assert world.weights_seen() == [0, 10, 20, 30, 0]


@pytest.mark.parametrize("policy, phase", [("hold", Phase.PROGRESSING), ("fail", Phase.FAILED)])
def test_a_quiet_service_holds_or_fails_by_policy(policy: str, phase: Phase) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], noDataPolicy=policy)
    world = release(spec, answer=answers(metrics=Verdict.NO_DATA))
    # The hold lasts consecutiveNoDataLimit ticks (test_machine_holds.py shows what follows).
    limit = spec.analysis.consecutive_no_data_limit
    world.run_until(lambda w: done(w) or w.reasons().count("NoTraffic") == limit)
    assert world.status.phase is phase
    if policy == "hold":
        assert world.status.canary_weight == 25 and world.status.failed_checks == 0
        assert world.status.consecutive_no_data == limit == 10
    # Traffic returns: the held release carries on.
    world.answer = always(Verdict.PASS)
    world.run_until(done)
    assert world.status.phase is (Phase.SUCCEEDED if policy == "hold" else Phase.FAILED)


def test_skip_analysis_promotes_without_probes() -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], webhooks=[hook("rollout")], _spec={"skipAnalysis": True})
    world = release(spec, answer=always(Verdict.FAIL))
    world.run_until(done)
    assert world.status.phase is Phase.SUCCEEDED
    assert world.asked == []
    assert "SkipAnalysis" in world.reasons()
    assert world.weights_seen() == [0]


# --- a new revision during a release -------------------------------------------------------------------


@pytest.mark.parametrize("slow", [False, True], ids=["instant", "slow"])
@pytest.mark.parametrize("at", [0, 25, 50], ids=lambda w: f"at-{w}")
def test_a_new_revision_mid_run_restarts(at: int, slow: bool) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], webhooks=[hook("confirm-promotion"), hook("rollout")], threshold=5)
    world = release(spec, slow=slow, answer=answers(confirm_promotion=Verdict.FAIL))
    world.run_until(lambda w: w.status.canary_weight == at and w.status.phase is Phase.PROGRESSING)
    world.answer = answers(rollout=Verdict.FAIL)
    world.run_until(lambda w: w.status.failed_checks == 1)
    assert world.status.canary_weight == at
    world.answer = always(Verdict.PASS)
    started = world.status.run_started
    world.push("rev3")
    restart = world.advance()
    assert [e.reason for e in restart.events] == ["Restarted"]
    new = world.status
    assert (new.phase, new.canary_weight, new.failed_checks, new.iterations, new.checks) == (
        Phase.PROGRESSING, 0, 0, 0, ())
    assert new.last_applied_spec == "rev3" and new.run_started != started
    assert world.route.weights == ALL_PRIMARY
    world.run_until(done)
    assert world.status.phase is Phase.SUCCEEDED and world.primary.checksum == "rev3"
    assert world.violations == []


@pytest.mark.parametrize("phase", [Phase.PROGRESSING, Phase.WAITING_PROMOTION], ids=str)
def test_going_back_to_the_promoted_revision_cancels(phase: Phase) -> None:
    spec = make_spec(webhooks=[hook("confirm-promotion")])
    world = release(spec, answer=answers(confirm_promotion=Verdict.FAIL))
    world.run_until(phase_is(phase))
    world.push("rev1")
    world.advance()
    assert world.status.phase is Phase.SUCCEEDED
    assert world.status.last_applied_spec == world.status.last_promoted_spec == "rev1"
    assert world.reasons()[-1] == "Cancelled"
    world.reconcile()
    assert world.route.weights == ALL_PRIMARY and world.target_replicas == 0
    assert world.primary.checksum == "rev1"
    assert all(d.outcome is None for d in world.decisions), "a cancelled run is neither promoted nor rolled back"


@pytest.mark.parametrize("phase", [Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED, Phase.WAITING], ids=str)
def test_the_promoted_revision_starts_nothing(phase: Phase) -> None:
    spec = make_spec(webhooks=[hook("confirm-rollout")])
    world = initialized(spec)
    if phase is Phase.SUCCEEDED:
        world.push("rev2")
        world.run_until(done)
    elif phase is Phase.FAILED:
        world.push("rev2")
        world.answer = answers(rollout=Verdict.FAIL)
        world.spec = make_spec(webhooks=[hook("rollout")], threshold=1)
        world.run_until(done)
        world.spec = spec
        world.answer = always(Verdict.PASS)
    elif phase is Phase.WAITING:
        world.answer = always(Verdict.FAIL)
        world.push("rev2")
        world.advance()
        world.answer = always(Verdict.PASS)
    assert world.status.phase is phase
    promoted = world.status.last_promoted_spec
    world.push(promoted)
    decision = world.advance()
    assert world.status.phase in (Phase.INITIALIZED, Phase.SUCCEEDED)
    assert world.status.last_applied_spec == promoted
    assert not any(isinstance(a, PromotePrimary) or (isinstance(a, ScaleCanary) and a.replicas > 0)
                   for a in decision.actions)
    for _ in range(3):
        world.advance()
    assert world.status.phase in (Phase.INITIALIZED, Phase.SUCCEEDED)
    assert world.target_replicas == 0


def test_a_newer_revision_before_the_primary_copy_restarts_instead_of_promoting() -> None:
    spec = make_spec()
    world = release(spec)
    world.run_until(lambda w: w.status.canary_weight == 50)
    world.now += timedelta(minutes=1)
    decision = world.think()  # analysis passes: Promoting, and the copy is ordered...
    assert decision.status.phase is Phase.PROMOTING
    world.reconcile(apply=0)  # ...but the controller dies before copying
    world.push("rev3")
    world.advance(timedelta(seconds=5))
    assert world.status.phase is Phase.PROGRESSING and world.status.last_applied_spec == "rev3"
    assert world.reasons()[-1] == "Restarted"
    assert world.primary.checksum == "rev1", "rev2 and rev3 were never copied unanalysed"
    assert not any(isinstance(a, PromotePrimary) for a in world.actions)
    world.run_until(done)
    assert world.primary.checksum == "rev3"


def test_a_newer_revision_after_the_copy_gets_no_traffic_and_runs_next() -> None:
    spec = make_spec(stepWeightPromotion=10)
    world = release(spec)
    world.run_until(phase_is(Phase.PROMOTING))
    world.advance(timedelta(seconds=5))
    assert world.primary.checksum == "rev2"
    world.push("rev3")
    world.run_until(done)
    assert world.status.last_promoted_spec == "rev2"
    # rev3 was never given traffic during the promotion steps.
    after_push = world.route_history[world.route_history.index(Weights(50, 50)) + 1:]
    assert all(w == ALL_PRIMARY for w in after_push)
    world.run_until(lambda w: w.status.phase is Phase.PROGRESSING)
    assert world.status.last_applied_spec == "rev3"
    world.run_until(done)
    assert world.primary.checksum == "rev3"


def test_the_target_reverting_to_the_promoted_revision_during_promotion_cancels() -> None:
    world = release(make_spec())
    world.run_until(lambda w: w.status.canary_weight == 50)
    world.now += timedelta(minutes=1)
    promoting = world.reconcile(apply=0)  # Promoting written, copy lost
    assert promoting.status.phase is Phase.PROMOTING
    world.push("rev1")
    world.advance(timedelta(seconds=5))
    assert world.status.phase is Phase.SUCCEEDED
    assert world.reasons()[-1] == "Cancelled"
    assert world.primary.checksum == "rev1"


def test_metrics_answers_reach_the_status_as_shown_to_users() -> None:
    results = {Probe.METRICS: (check("request-success-rate", Verdict.PASS).with_verdict(Verdict.PASS, "within", 99.9),)}
    world = release(make_spec(metrics=[SUCCESS_RATE]), answer=lambda p, w: results[p])
    world.run_until(lambda w: w.status.canary_weight == 50)
    assert world.status.checks == results[Probe.METRICS]
