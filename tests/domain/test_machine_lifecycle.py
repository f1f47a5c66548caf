"""Initialisation, deadlines, drift, suspend, problems, invalid specs, deletion and the idle no-op."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from canary.domain.actions import (
    EnsurePrimary, EnsureServices, Notify, PromotePrimary, RestoreTarget, ScaleCanary, SetFinalizer, SetRoute,
)
from canary.domain.machine import PROBLEM_POLL, READINESS_POLL, Decision, RollbackCause, decide, decide_invalid
from canary.domain.observed import Problem, RouteState
from canary.domain.spec import WebhookType
from canary.domain.status import CanaryStatus, ConditionType, Phase, Verdict
from canary.domain.weights import ALL_PRIMARY, Weights
from tests.domain.world import (
    NOW, SUCCESS_RATE, T0, World, always, assert_safe, decide_all, hook, idle, initialized, make_spec, phase_is,
    running, seen,
)

DEADLINE = timedelta(seconds=600)


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


# --- initialisation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("slow", [False, True], ids=["instant", "slow"])
def test_initialisation_order(slow: bool) -> None:
    world = World(spec=make_spec(), slow=slow)
    world.run_until(phase_is(Phase.INITIALIZED), step=timedelta(seconds=1))
    kinds = [type(a) for a in world.actions]
    assert kinds == [EnsurePrimary, EnsureServices, SetRoute, ScaleCanary]
    assert world.actions[0] == EnsurePrimary(2), "the primary gets the target's replicas"
    assert world.actions[2] == SetRoute(ALL_PRIMARY)
    assert world.actions[3] == ScaleCanary(0), "the target serves until the primary took over"
    assert world.reasons() == ["Initializing", "Initialized"]
    assert (world.status.last_applied_spec, world.status.last_promoted_spec) == ("rev1", "rev1")
    assert world.status.message == "" and world.status.waiting_since is None
    # Every decision before Initialized asks to be woken: nothing else may wake it.
    for d in world.decisions[:-1]:
        assert d.requeue_after == READINESS_POLL
    assert world.violations == []


@pytest.mark.parametrize("replicas, expected", [(0, 1), (1, 1), (5, 5)])
def test_primary_replicas_follow_the_target(replicas: int, expected: int) -> None:
    world = World(spec=make_spec(), target_replicas=replicas)
    world.reconcile()
    assert world.actions == [EnsurePrimary(expected)]


def test_initialising_deadline_only_reports() -> None:
    world = World(spec=make_spec(), primary_healthy=False)
    world.reconcile()
    world.run_until(lambda w: "NotReady" in w.reasons(), step=timedelta(seconds=30))
    assert world.now - T0 > DEADLINE
    assert world.status.phase is Phase.INITIALIZING
    assert "podinfo-primary not ready after progressDeadlineSeconds (600s)" in world.status.message
    for _ in range(10):
        world.advance(timedelta(minutes=5))
    assert world.status.phase is Phase.INITIALIZING
    assert world.reasons().count("NotReady") == 1, "reported once, not at every poll"
    assert world.target_replicas == 2, "the target keeps serving"
    world.primary = replace(world.primary, ready=True)
    world.run_until(phase_is(Phase.INITIALIZED), step=timedelta(seconds=1))
    assert world.status.message == ""


def test_initialisation_waits_for_a_target() -> None:
    world = World(spec=make_spec(), target_exists=False)
    decision = world.reconcile()
    assert decision.actions == () and decision.status.phase is None
    assert decision.requeue_after == PROBLEM_POLL


# --- progress deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize("waited, rolled_back", [
    (timedelta(0), False), (timedelta(seconds=10), False), (DEADLINE, False),
    (DEADLINE + timedelta(seconds=1), True), (DEADLINE * 10, True),
], ids=["0s", "10s", "exactly", "1s-over", "long-over"])
@pytest.mark.parametrize("weight", [0, 25], ids=lambda w: f"w{w}")
def test_canary_progress_deadline(weight: int, waited: timedelta, rolled_back: bool) -> None:
    status = running(Phase.PROGRESSING, weight, waiting_since=NOW - waited)
    observed = seen(ready=False, route=Weights.canary_at(weight))
    observed = replace(observed, target=replace(observed.target, message="ImagePullBackOff"))
    decision, asked = decide_all(make_spec(metrics=[SUCCESS_RATE]), status, observed, NOW)
    assert_safe(decision, observed)
    assert asked == []
    if rolled_back:
        assert decision.status.phase is Phase.FAILED
        assert decision.status.message == ("podinfo not ready after progressDeadlineSeconds (600s): "
                                           "ImagePullBackOff")
        assert decision.outcome is not None and decision.outcome.cause == RollbackCause.DEADLINE.value
        assert decision.actions[-2:] == (ScaleCanary(0), Notify(WebhookType.POST_ROLLOUT))
    else:
        assert decision.status.phase is Phase.PROGRESSING
        assert decision.requeue_after == min(READINESS_POLL, DEADLINE - waited)


def test_a_canary_that_recovers_clears_the_deadline_clock() -> None:
    status = running(Phase.PROGRESSING, 25, waiting_since=NOW - timedelta(seconds=500))
    decision, _ = decide_all(make_spec(), status, seen(route=Weights.canary_at(25)), NOW)
    assert decision.status.waiting_since is None


def test_canary_deadline_in_a_whole_release() -> None:
    world = initialized(make_spec(metrics=[SUCCESS_RATE]))
    world.canary_healthy = False
    world.push("rev2")
    world.run_until(lambda w: w.status.phase is Phase.FAILED, step=timedelta(seconds=30))
    assert T0 + DEADLINE < world.now
    assert world.decisions[-1].outcome is not None and world.decisions[-1].outcome.cause == "deadline"
    assert world.target_replicas == 0 and world.route.weights == ALL_PRIMARY
    assert world.asked == []


@pytest.mark.parametrize("waited, failed", [(DEADLINE, False), (DEADLINE + timedelta(seconds=1), True)],
                         ids=["exactly", "over"])
@pytest.mark.parametrize("copied", [False, True], ids=["not-copied", "copied-unready"])
def test_primary_deadline_while_promoting(copied: bool, waited: timedelta, failed: bool) -> None:
    status = running(Phase.PROMOTING, 50, waiting_since=NOW - waited)
    observed = seen(route=Weights.canary_at(50), primary_rev="rev2" if copied else "rev1", primary_ready=False)
    decision, _ = decide_all(make_spec(), status, observed, NOW)
    assert_safe(decision, observed)
    if failed:
        assert decision.status.phase is Phase.FAILED and decision.status.canary_weight == 0
        assert reasons(decision) == ["PromotionFailed"]
        assert decision.outcome is not None and decision.outcome.cause == "deadline"
        assert list(decision.actions) == [SetRoute(ALL_PRIMARY), ScaleCanary(0), Notify(WebhookType.POST_ROLLOUT)]
    else:
        assert decision.status.phase is Phase.PROMOTING
        assert decision.requeue_after == READINESS_POLL


def test_primary_deadline_in_a_whole_release() -> None:
    world = initialized(make_spec())
    world.push("rev2")
    world.primary_healthy = False
    world.run_until(lambda w: w.status.phase is Phase.FAILED, step=timedelta(seconds=30))
    assert "PromotionFailed" in world.reasons()
    assert world.status.last_promoted_spec == "rev1"


# --- drift -------------------------------------------------------------------------------------------

DRIFTED = [Weights(0, 100), Weights(90, 10), None]


@pytest.mark.parametrize("found", [*DRIFTED, "missing"], ids=["0-100", "90-10", "unrecognised", "missing"])
@pytest.mark.parametrize("phase, weight", [(Phase.INITIALIZED, 0), (Phase.SUCCEEDED, 0), (Phase.FAILED, 0),
                                           (Phase.PROGRESSING, 25), (Phase.WAITING_PROMOTION, 50),
                                           (Phase.PROMOTING, 50), (Phase.FINALISING, 0)],
                         ids=lambda v: str(v))
def test_a_route_changed_by_someone_else_is_put_back(phase: Phase, weight: int, found: Weights | str | None) -> None:
    status = running(phase, weight, last_analysis_time=NOW, primary_replicas=2)
    serving = phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING)
    replicas = 2 if serving else 0
    route = found if isinstance(found, Weights) else None
    observed = seen(route=route, replicas=replicas, ready=serving, primary_rev="rev2" if phase is Phase.FINALISING
                    else "rev1")
    if found is None:
        observed = replace(observed, route=RouteState(exists=True, weights=None))
    decision, _ = decide_all(make_spec(), status, observed, NOW)
    wanted = Weights.canary_at(weight) if serving else ALL_PRIMARY
    assert SetRoute(wanted) in decision.actions
    restored = [e for e in decision.events if e.reason == "RouteRestored"]
    if found == "missing":
        assert restored == [], "a missing route is created, not reported as drift"
    else:
        assert len(restored) == 1 and restored[0].warning
        assert f"expected {wanted}" in restored[0].message
        assert ("an unrecognised shape" if found is None else f"found {found}") in restored[0].message


def test_drift_in_a_whole_release() -> None:
    world = initialized(make_spec())
    world.push("rev2")
    world.run_until(lambda w: w.status.canary_weight == 25)
    world.route = RouteState(exists=True, weights=Weights(0, 100))
    world.advance(timedelta(seconds=5))
    assert world.route.weights == Weights(75, 25)
    assert world.reasons().count("RouteRestored") == 1
    world.run_until(lambda w: w.status.phase is Phase.SUCCEEDED)
    assert world.reasons().count("RouteRestored") == 1


@pytest.mark.parametrize("weight", [25, 50])
def test_readiness_flips_are_not_drift(weight: int) -> None:
    world = initialized(make_spec(webhooks=[hook("confirm-promotion")]), answer=always(Verdict.FAIL))
    world.answer = lambda p, w: always(Verdict.FAIL if p.value == "confirm-promotion" else Verdict.PASS)(p, w)
    world.push("rev2")
    world.run_until(lambda w: w.status.canary_weight == weight)
    for _ in range(3):
        world.canary_healthy = False
        world.advance(timedelta(seconds=5))
        assert world.route.weights == ALL_PRIMARY
        world.canary_healthy = True
        world.advance(timedelta(seconds=5))
        assert world.route.weights == Weights.canary_at(world.status.canary_weight)
    assert "RouteRestored" not in world.reasons()


# --- suspend -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", [None, Phase.INITIALIZING, Phase.INITIALIZED, Phase.PROGRESSING, Phase.PROMOTING,
                                   Phase.FINALISING, Phase.SUCCEEDED, Phase.FAILED], ids=str)
def test_suspend_decides_no_actions_and_no_transition(phase: Phase | None) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], _spec={"suspend": True})
    status = running(phase, 25) if phase is not None else CanaryStatus()
    # Everything is out of line: drift, an unready canary, a missing primary, a new revision.
    observed = seen(ready=False, route=Weights(0, 100), primary_exists=False, rev="rev9")
    decision, asked = decide_all(spec, status, observed, NOW)
    assert asked == []
    assert decision.actions == () and decision.events == ()
    assert decision.status.phase == status.phase and decision.status.canary_weight == status.canary_weight
    reconciling = decision.status.condition(ConditionType.RECONCILING)
    assert reconciling is not None and not reconciling.status and reconciling.reason == "Suspended"


def test_unsuspending_carries_on() -> None:
    world = initialized(make_spec())
    world.push("rev2")
    world.run_until(lambda w: w.status.canary_weight == 25)
    world.spec = make_spec(_spec={"suspend": True})
    for _ in range(5):
        assert world.advance().actions == ()
    assert world.status.canary_weight == 25
    world.spec = make_spec()
    world.run_until(lambda w: w.status.phase is Phase.SUCCEEDED)
    assert world.weights_seen() == [0, 25, 50, 0]


# --- problems and invalid specs ------------------------------------------------------------------------


@pytest.mark.parametrize("phase", [Phase.PROGRESSING, Phase.WAITING_PROMOTION], ids=str)
def test_rollback_annotation_works_while_stalled(phase: Phase) -> None:
    # A MetricTemplate deleted mid-run stalls the analysis; it must not block an emergency rollback.
    spec = make_spec(metrics=[SUCCESS_RATE])
    observed = seen(problem=PROBLEM, ready=True, route=Weights.canary_at(25), rev="rev2", replicas=2,
                    annotations={"canary.dev/rollback": "pager"})
    decision, _ = decide_all(spec, running(phase, 25), observed, NOW)
    assert decision.status.phase is Phase.FAILED
    assert SetRoute(ALL_PRIMARY) in decision.actions

PROBLEM = Problem(field="spec.analysis.metrics[0].templateRef", reason="TemplateNotFound",
                  message="MetricTemplate errors not found in namespace test")


@pytest.mark.parametrize("phase", [Phase.INITIALIZED, Phase.SUCCEEDED, Phase.PROGRESSING, Phase.WAITING_PROMOTION,
                                   Phase.PROMOTING, Phase.FAILED], ids=str)
def test_a_problem_stalls_without_transitions(phase: Phase) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE])
    status = running(phase, 25, waiting_since=NOW - DEADLINE * 2)
    serving = phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING)
    observed = seen(problem=PROBLEM, ready=True, route=Weights.canary_at(25) if serving else ALL_PRIMARY, rev="rev3",
                    replicas=2 if serving else 0)
    decision, asked = decide_all(spec, status, observed, NOW)
    assert asked == []
    new = decision.status
    assert (new.phase, new.canary_weight, new.last_applied_spec, new.waiting_since) == (
        phase, 25, "rev2", status.waiting_since)
    assert decision.events == ()
    assert decision.requeue_after == PROBLEM_POLL
    stalled = new.condition(ConditionType.STALLED)
    assert stalled is not None and stalled.status and stalled.message == PROBLEM.message
    ready = new.condition(ConditionType.READY)
    assert ready is not None and not ready.status
    # The route still follows what the status says, and never feeds an unready canary.
    unready = replace(observed, target=replace(observed.target, ready=False))
    decision, _ = decide_all(spec, status, unready, NOW)
    assert all(a.weights.canary == 0 for a in decision.actions if isinstance(a, SetRoute))


@pytest.mark.parametrize("phase", [None, Phase.INITIALIZING, Phase.INITIALIZED, Phase.PROGRESSING, Phase.FAILED],
                         ids=str)
def test_invalid_spec_reports_each_distinct_problem_once(phase: Phase | None) -> None:
    status = CanaryStatus(phase=phase, canary_weight=10, observed_generation=1)
    first = decide_invalid(status, PROBLEM, 2, NOW)
    assert first.actions == () and first.requeue_after is None
    assert [(e.reason, e.message, e.warning) for e in first.events] == [(PROBLEM.reason, PROBLEM.message, True)]
    assert first.status.observed_generation == 2
    assert first.status.with_(conditions=(), observed_generation=1) == status
    stalled = first.status.condition(ConditionType.STALLED)
    assert stalled is not None and stalled.status and stalled.reason == "TemplateNotFound"
    same = decide_invalid(first.status, PROBLEM, 3, NOW + timedelta(minutes=1))
    assert same.events == ()
    assert same.status.conditions == first.status.conditions, "nothing to write while the problem lasts"
    other = replace(PROBLEM, message="spec.analysis.interval: 'x' is not a duration")
    changed = decide_invalid(same.status, other, 4, NOW + timedelta(minutes=2))
    assert [e.message for e in changed.events] == [other.message]


def test_fixing_the_spec_clears_stalled() -> None:
    world = initialized(make_spec())
    world.status = decide_invalid(world.status, PROBLEM, 2, world.now).status
    decision = world.advance()
    stalled = decision.status.condition(ConditionType.STALLED)
    assert stalled is not None and not stalled.status
    ready = decision.status.condition(ConditionType.READY)
    assert ready is not None and ready.status


# --- deletion ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("slow", [False, True], ids=["instant", "slow"])
@pytest.mark.parametrize("when", ["initialized", "progressing", "failed", "succeeded", "initializing"])
def test_revert_on_deletion(when: str, slow: bool) -> None:
    spec = make_spec(_spec={"revertOnDeletion": True})
    if when == "initializing":
        world = World(spec=spec, slow=slow)
        world.reconcile()
        world.reconcile()
    else:
        world = initialized(spec, slow=slow)
    if when in ("progressing", "failed", "succeeded"):
        world.push("rev2")
        if when == "failed":
            world.spec = make_spec(webhooks=[hook("rollout")], threshold=1, _spec={"revertOnDeletion": True})
            world.answer = always(Verdict.FAIL)
        world.run_until(lambda w: w.status.canary_weight == 25 if when == "progressing"
                        else w.status.phase in (Phase.FAILED, Phase.SUCCEEDED))
    assert world.finalizer, "revertOnDeletion holds a deletion with the finalizer"
    world.deleting = True
    world.actions.clear()
    world.events.clear()
    had_route, had_services = world.route.exists, world.services
    world.run_until(phase_is(Phase.TERMINATED), step=timedelta(seconds=5), limit=20)
    # The finalizer goes once traffic is back on the target, never before.
    assert world.deleted and world.actions[-1] == SetFinalizer(False)
    assert world.actions.count(SetFinalizer(False)) == 1
    assert not world.services, "the apex Service is handed back to the target"
    assert world.reasons() == ["Terminating", "Terminated"]
    if had_route:
        assert SetRoute(Weights(0, 100)) in world.actions
        assert world.actions.index(SetRoute(Weights(0, 100))) < world.actions.index(RestoreTarget())
    assert (RestoreTarget() in world.actions) is (had_route or had_services)
    scale = [a for a in world.actions if isinstance(a, ScaleCanary)]
    assert all(a.replicas > 0 for a in scale)
    assert world.target_replicas > 0 and not world.route.exists
    assert world.violations == []
    # Terminated is final.
    assert world.advance().actions == ()
    assert world.status.phase is Phase.TERMINATED


def test_terminating_scales_the_target_before_routing_to_it() -> None:
    spec = make_spec(_spec={"revertOnDeletion": True})
    status = idle(Phase.SUCCEEDED)
    observed = seen(ready=False, replicas=0, rev="rev1", deleting=True)
    decision, _ = decide_all(spec, status, observed, NOW)
    assert decision.status.phase is Phase.TERMINATING
    assert decision.actions == (ScaleCanary(2),), "no route to the target until it is ready"
    ready = seen(ready=True, replicas=2, rev="rev1", deleting=True)
    decision, _ = decide_all(spec, decision.status, ready, NOW)
    assert decision.actions == (SetRoute(Weights(0, 100)), RestoreTarget())
    assert "RouteRestored" not in reasons(decision)


def test_revert_on_deletion_with_the_target_gone_terminates() -> None:
    spec = make_spec(_spec={"revertOnDeletion": True})
    observed = seen(target_exists=False, deleting=True)
    for status in (idle(Phase.SUCCEEDED), idle(Phase.TERMINATING)):
        decision, _ = decide_all(spec, status, observed, NOW)
        assert decision.status.phase is Phase.TERMINATED
        assert decision.actions == ()


@pytest.mark.parametrize("phase", [Phase.INITIALIZED, Phase.PROGRESSING, Phase.PROMOTING, Phase.FAILED], ids=str)
def test_deletion_without_revert_does_nothing(phase: Phase) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE])
    status = running(phase, 25)
    # Garbage collection is removing the primary and the route: nothing may be recreated.
    observed = seen(ready=False, route=Weights(75, 25), primary_exists=False, services=False, deleting=True,
                    annotations={"canary.dev/rollback": "x"})
    decision, asked = decide_all(spec, status, observed, NOW)
    assert asked == []
    assert decision.actions == () and decision.events == ()
    assert decision.status.phase is phase
    assert decision.status.handled_annotations == {}


@pytest.mark.parametrize(
    ("revert", "finalizer", "deleting", "expected"),
    [
        pytest.param(True, False, False, (SetFinalizer(True),), id="added-with-the-option"),
        pytest.param(False, True, False, (SetFinalizer(False),), id="removed-when-the-option-goes"),
        pytest.param(True, True, False, (), id="kept"),
        pytest.param(False, False, False, (), id="never-added-without-the-option"),
        pytest.param(False, True, True, (SetFinalizer(False),), id="a-deletion-after-the-option-went-is-let-go"),
    ],
)
def test_the_finalizer_follows_revert_on_deletion(revert: bool, finalizer: bool, deleting: bool,
                                                  expected: tuple[SetFinalizer, ...]) -> None:
    spec = make_spec(_spec={"revertOnDeletion": revert})
    observed = replace(seen(ready=False, replicas=0, rev="rev1", deleting=deleting), finalizer=finalizer)
    decision, _ = decide_all(spec, idle(Phase.SUCCEEDED), observed, NOW)
    assert tuple(a for a in decision.actions if isinstance(a, SetFinalizer)) == expected


def test_an_unreadable_spec_lets_a_held_deletion_go() -> None:
    held = decide_invalid(idle(Phase.SUCCEEDED), PROBLEM, 2, NOW, deleting_with_finalizer=True)
    assert held.actions == (SetFinalizer(False),)
    assert "Terminated" in [e.reason for e in held.events]
    assert decide_invalid(idle(Phase.SUCCEEDED), PROBLEM, 2, NOW).actions == ()


# --- the idle no-op ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec_kind", ["plain", "hooks", "blue-green", "revert"])
@pytest.mark.parametrize("phase", [Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED], ids=str)
def test_an_idle_canary_decides_nothing_new(phase: Phase, spec_kind: str) -> None:
    analysis = {
        "plain": {},
        "hooks": {"metrics": [SUCCESS_RATE], "webhooks": [hook(k.value) for k in WebhookType]},
        "blue-green": {"stepWeight": None, "maxWeight": None, "iterations": 2},
        "revert": {"_spec": {"revertOnDeletion": True}},
    }[spec_kind]
    world = initialized(make_spec(**analysis))  # type: ignore[arg-type]
    # Everything passes; the rollback webhook says "do not roll back".
    world.answer = lambda p, w: always(Verdict.FAIL if p.value == "rollback" else Verdict.PASS)(p, w)
    if phase is not Phase.INITIALIZED:
        world.push("rev2")
        if phase is Phase.FAILED:
            world.advance()
            # Rolled back by hand; the annotation stays on the Canary.
            world.annotations["canary.dev/rollback"] = "bad"
        world.run_until(lambda w: w.status.phase is phase)
    world.reconcile()
    settled = world.status
    for delta in (timedelta(0), timedelta(seconds=1), timedelta(hours=5)):
        world.now += delta
        decision = world.think()
        assert decision.status == settled, "an unchanged status means nothing to write"
        assert decision.actions == () and decision.events == ()
        assert decision.requeue_after is None, "an idle canary costs nothing"
        assert decision.outcome is None


def test_an_idle_canary_survives_the_status_round_trip() -> None:
    world = initialized(make_spec())
    stored = CanaryStatus.from_dict(world.status.to_dict())
    decision = decide(world.spec, stored, world.observe(), world.now + timedelta(hours=1))
    assert isinstance(decision, Decision)
    assert decision.status == stored and decision.actions == ()


def test_a_canary_scaled_up_by_hand_is_scaled_back_down() -> None:
    world = initialized(make_spec())
    world.target_replicas = 3
    decision = world.advance()
    assert decision.actions == (ScaleCanary(0),)
    assert decision.status.phase is Phase.INITIALIZED


def test_a_lost_primary_is_recreated_before_anything_else() -> None:
    world = initialized(make_spec())
    world.primary = replace(world.primary, exists=False)
    decision = world.advance()
    assert decision.actions[0] == EnsurePrimary(2)
    assert not any(isinstance(a, PromotePrimary) for a in decision.actions)


def test_a_route_rewritten_after_a_spec_edit_is_not_reported_as_someone_elses_change() -> None:
    # A new generation (hosts, headers, A/B conditions edited) changes the route the controller
    # writes; the route found was the controller's own, so no RouteRestored warning.
    status = running(Phase.PROGRESSING, 25, last_analysis_time=NOW, observed_generation=2)
    observed = replace(seen(), route=RouteState(exists=True, weights=None))
    decision, _ = decide_all(make_spec(), status, observed, NOW)
    assert SetRoute(Weights(75, 25)) in decision.actions
    assert "RouteRestored" not in [e.reason for e in decision.events]
    # The same route at the generation the status has seen is someone else's doing.
    decision, _ = decide_all(make_spec(), status.with_(observed_generation=3), observed, NOW)
    assert "RouteRestored" in [e.reason for e in decision.events]
