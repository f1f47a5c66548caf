"""Webhook gates and hooks: which probes a decision asks for, and what each verdict does."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from canary.domain.actions import Notify, PromotePrimary, ScaleCanary, SetRoute
from canary.domain.machine import Decision, NeedProbes, Probe, RollbackCause, decide
from canary.domain.spec import CanarySpec, WebhookType
from canary.domain.status import CanaryStatus, Phase, Verdict
from canary.domain.weights import ALL_PRIMARY, Weights
from tests.domain.world import (
    INTERVAL, NOW, SUCCESS_RATE, answered, assert_safe, check, decide_all, hook, idle, make_spec, probe_results,
    running, seen,
)

VERDICTS = list(Verdict)
NOT_PASS = [v for v in Verdict if v is not Verdict.PASS]
GATES = [WebhookType.ROLLBACK, WebhookType.PRE_ROLLOUT, WebhookType.ROLLOUT, WebhookType.CONFIRM_TRAFFIC_INCREASE,
         WebhookType.CONFIRM_PROMOTION, WebhookType.CONFIRM_ROLLOUT]
#: Webhook types that never gate anything: configuring them must not make decide ask for probes.
NON_GATES = [WebhookType.POST_ROLLOUT, WebhookType.EVENT]


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


def first_ask(spec: CanarySpec, status: CanaryStatus, ready: bool = True) -> frozenset[Probe]:
    observed = seen(ready=ready, route=Weights.canary_at(status.canary_weight))
    result = decide(spec, status, observed, NOW)
    return result.probes if isinstance(result, NeedProbes) else frozenset()


# --- which probes are asked ------------------------------------------------------------------------

SUBSETS = [c for n in range(0, 4) for c in itertools.combinations([*GATES, "metrics"], n)]


def passing(probe: Probe) -> tuple[Any, ...]:
    """Everything passes, and the rollback webhook says "do not roll back"."""
    return answered(Verdict.FAIL if probe is Probe.ROLLBACK else Verdict.PASS)(probe)


def tick_then_gates(asked: list[frozenset[Probe]], tick: set[Probe]) -> tuple[set[Probe], set[Probe]]:
    """Split what a decision asked into the analysis probes (asked first) and the gates after them."""
    if not tick:
        return set(), set().union(*asked) if asked else set()
    assert asked and asked[0] == tick, asked
    return set(asked[0]), set().union(*asked[1:]) if len(asked) > 1 else set()


@pytest.mark.parametrize("weight", [0, 25, 50], ids=lambda w: f"w{w}")
@pytest.mark.parametrize("configured", SUBSETS, ids=lambda c: "+".join(c) or "nothing")
def test_a_canary_tick_asks_only_for_configured_probes(configured: tuple[str, ...], weight: int) -> None:
    spec = make_spec(webhooks=[hook(k) for k in configured if k != "metrics"] + [hook(k.value) for k in NON_GATES],
                     metrics=[SUCCESS_RATE] if "metrics" in configured else [])
    tick = set()
    if WebhookType.ROLLBACK in configured:
        tick.add(Probe.ROLLBACK)
    if WebhookType.PRE_ROLLOUT in configured and weight == 0:
        tick.add(Probe.PRE_ROLLOUT)
    if WebhookType.ROLLOUT in configured:
        tick.add(Probe.ROLLOUT_HOOKS)
    if "metrics" in configured and weight > 0:  # no traffic yet at 0%: metrics would mean nothing
        tick.add(Probe.METRICS)
    gate = set()
    if weight < 50 and WebhookType.CONFIRM_TRAFFIC_INCREASE in configured:
        gate.add(Probe.CONFIRM_TRAFFIC_INCREASE)
    if weight == 50 and WebhookType.CONFIRM_PROMOTION in configured:
        gate.add(Probe.CONFIRM_PROMOTION)

    status = running(Phase.PROGRESSING, weight)
    observed = seen(route=Weights.canary_at(weight))
    _, asked = decide_all(spec, status, observed, NOW, passing)
    assert tick_then_gates(asked, tick) == (tick, gate)

    if tick - {Probe.ROLLBACK}:
        # A failed analysis never asks a gate.
        _, asked = decide_all(spec, status, observed, NOW, answered(Verdict.FAIL))
        assert asked == [tick]


@pytest.mark.parametrize("iterations_done", [0, 1, 2], ids=lambda i: f"iter{i}")
@pytest.mark.parametrize("configured", SUBSETS, ids=lambda c: "+".join(c) or "nothing")
def test_a_blue_green_tick_asks_for_metrics_without_canary_traffic(configured: tuple[str, ...],
                                                                    iterations_done: int) -> None:
    spec = make_spec(stepWeight=None, maxWeight=None, iterations=3,
                     webhooks=[hook(k) for k in configured if k != "metrics"],
                     metrics=[SUCCESS_RATE] if "metrics" in configured else [])
    tick = set()
    if WebhookType.ROLLBACK in configured:
        tick.add(Probe.ROLLBACK)
    if WebhookType.PRE_ROLLOUT in configured and iterations_done == 0:
        tick.add(Probe.PRE_ROLLOUT)
    if WebhookType.ROLLOUT in configured:
        tick.add(Probe.ROLLOUT_HOOKS)
    if "metrics" in configured:
        tick.add(Probe.METRICS)
    # No traffic increase in blue/green; confirm-promotion after the last iteration.
    gate = {Probe.CONFIRM_PROMOTION} if iterations_done == 2 and WebhookType.CONFIRM_PROMOTION in configured else set()
    _, asked = decide_all(spec, running(Phase.PROGRESSING, 0, iterations=iterations_done), seen(), NOW, passing)
    assert tick_then_gates(asked, tick) == (tick, gate)


@pytest.mark.parametrize("phase", [Phase.PROMOTING, Phase.FINALISING, Phase.SUCCEEDED, Phase.INITIALIZED,
                                   Phase.FAILED], ids=str)
def test_phases_outside_the_analysis_ask_nothing(phase: Phase) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], webhooks=[hook(k.value) for k in WebhookType
                                                       if k is not WebhookType.CONFIRM_ROLLOUT])
    assert first_ask(spec, running(phase, 50 if phase is Phase.PROMOTING else 0)) == frozenset()


@pytest.mark.parametrize("ready", [True, False], ids=["ready", "unready"])
def test_an_unready_canary_is_not_analysed(ready: bool) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], webhooks=[hook("rollout"), hook("rollback")])
    asked = first_ask(spec, running(Phase.PROGRESSING, 25), ready=ready)
    assert asked == ({Probe.METRICS, Probe.ROLLOUT_HOOKS, Probe.ROLLBACK} if ready else frozenset())


def test_results_for_probes_not_asked_change_nothing() -> None:
    spec = make_spec()
    status = running(Phase.PROGRESSING, 25)
    observed = seen(route=Weights.canary_at(25))
    plain = decide(spec, status, observed, NOW)
    noisy = decide(spec, status, observed, NOW, probe_results(Verdict.FAIL, *Probe))
    assert plain == noisy


# --- confirm-rollout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("verdict", VERDICTS, ids=str)
@pytest.mark.parametrize("phase", [Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED], ids=str)
def test_confirm_rollout_gates_a_new_revision(phase: Phase, verdict: Verdict) -> None:
    spec = make_spec(webhooks=[hook("confirm-rollout")])
    status = idle(phase, last_analysis_time=NOW - timedelta(seconds=5))
    observed = seen(ready=False, replicas=0, rev="rev2")
    decision, asked = decide_all(spec, status, observed, NOW, answered(verdict))
    assert_safe(decision, observed)
    assert asked == [{Probe.CONFIRM_ROLLOUT}]
    new = decision.status
    if verdict is Verdict.PASS:
        assert new.phase is Phase.PROGRESSING and new.last_applied_spec == "rev2"
        assert decision.actions == (ScaleCanary(2),)
        assert reasons(decision) == ["Started"]
    else:
        assert new.phase is Phase.WAITING
        assert new.last_applied_spec == "rev1", "a revision not yet allowed to roll out is not applied"
        assert new.last_analysis_time == NOW
        assert [c.verdict for c in new.checks] == [verdict]
        assert decision.actions == ()
        assert reasons(decision) == ["Waiting"]
        assert decision.requeue_after == INTERVAL


@pytest.mark.parametrize("verdict", VERDICTS, ids=str)
@pytest.mark.parametrize("elapsed, due", [(timedelta(seconds=10), False), (timedelta(seconds=59), False),
                                          (INTERVAL, True), (timedelta(minutes=5), True)],
                         ids=["10s", "59s", "1m", "5m"])
def test_waiting_rechecks_confirm_rollout_once_per_interval(elapsed: timedelta, due: bool, verdict: Verdict) -> None:
    spec = make_spec(webhooks=[hook("confirm-rollout")])
    status = idle(Phase.WAITING, last_analysis_time=NOW - elapsed)
    observed = seen(ready=False, replicas=0, rev="rev2")
    decision, asked = decide_all(spec, status, observed, NOW, answered(verdict))
    if not due:
        assert asked == []
        assert decision.status == status.with_(conditions=decision.status.conditions)
        assert decision.requeue_after == INTERVAL - elapsed
        return
    assert asked == [{Probe.CONFIRM_ROLLOUT}]
    if verdict is Verdict.PASS:
        assert decision.status.phase is Phase.PROGRESSING
    else:
        assert decision.status.phase is Phase.WAITING
        assert decision.status.last_transition_time == status.last_transition_time
        assert decision.events == (), "the Waiting event is sent once, not at every re-check"
        assert decision.status.last_analysis_time == NOW


def test_waiting_keeps_the_canary_scaled_down() -> None:
    spec = make_spec(webhooks=[hook("confirm-rollout")])
    status = idle(Phase.WAITING, last_analysis_time=NOW)
    decision = decide(spec, status, seen(ready=True, replicas=2, rev="rev2"), NOW)
    assert isinstance(decision, Decision)
    assert decision.actions == (ScaleCanary(0),)


@pytest.mark.parametrize("phase", [Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED], ids=str)
def test_without_confirm_rollout_a_new_revision_starts_at_once(phase: Phase) -> None:
    decision, asked = decide_all(make_spec(), idle(phase), seen(ready=False, replicas=0, rev="rev2"), NOW)
    assert asked == []
    assert decision.status.phase is Phase.PROGRESSING


# --- pre-rollout, rollout hooks, rollback webhook ----------------------------------------------------


@pytest.mark.parametrize("verdict", VERDICTS, ids=str)
def test_pre_rollout_failure_counts_and_blocks_the_first_step(verdict: Verdict) -> None:
    spec = make_spec(webhooks=[hook("pre-rollout")])
    decision, asked = decide_all(spec, running(Phase.PROGRESSING, 0), seen(), NOW, answered(verdict))
    assert asked == [{Probe.PRE_ROLLOUT}]
    if verdict is Verdict.PASS:
        assert decision.status.canary_weight == 25
    elif verdict in (Verdict.NO_DATA, Verdict.UNAVAILABLE):
        assert (decision.status.canary_weight, decision.status.failed_checks) == (0, 0)
    else:
        assert (decision.status.canary_weight, decision.status.failed_checks) == (0, 1)


@pytest.mark.parametrize("weight", [0, 25, 50], ids=lambda w: f"w{w}")
@pytest.mark.parametrize("verdict", VERDICTS, ids=str)
def test_rollback_webhook_pass_means_roll_back(verdict: Verdict, weight: int) -> None:
    spec = make_spec(webhooks=[hook("rollback")])
    observed = seen(route=Weights.canary_at(weight))
    status = running(Phase.PROGRESSING, weight, failed_checks=1)
    decision, asked = decide_all(spec, status, observed, NOW, answered(verdict))
    assert_safe(decision, observed)
    assert asked[0] == {Probe.ROLLBACK}
    new = decision.status
    if verdict is Verdict.PASS:
        assert new.phase is Phase.FAILED and new.canary_weight == 0
        assert new.message == "rolled back by a rollback webhook"
        assert decision.outcome is not None and decision.outcome.cause == RollbackCause.WEBHOOK.value
        assert list(decision.actions) == ([SetRoute(ALL_PRIMARY)] if weight else []) + [
            ScaleCanary(0), Notify(WebhookType.POST_ROLLOUT)]
    else:
        # Any other answer is "do not roll back"; it is not a failed check either.
        assert new.phase in (Phase.PROGRESSING, Phase.PROMOTING)
        assert new.failed_checks == 1
        assert new.canary_weight == min(weight + 25, 50)


@pytest.mark.parametrize("other", VERDICTS, ids=lambda v: f"others-{v}")
def test_rollback_webhook_wins_over_other_results(other: Verdict) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], webhooks=[hook("rollback"), hook("rollout")])

    def answer(probe: Probe) -> tuple[Any, ...]:
        return answered(Verdict.PASS if probe is Probe.ROLLBACK else other)(probe)

    decision, _ = decide_all(spec, running(Phase.PROGRESSING, 25), seen(route=Weights.canary_at(25)), NOW, answer)
    assert decision.status.phase is Phase.FAILED
    assert decision.outcome is not None and decision.outcome.cause == "webhook"


@pytest.mark.parametrize("verdicts", list(itertools.product(VERDICTS, repeat=2)), ids=lambda v: "+".join(v))
def test_every_rollout_hook_must_pass(verdicts: tuple[Verdict, Verdict]) -> None:
    spec = make_spec(webhooks=[hook("rollout", "a"), hook("rollout", "b")], noDataPolicy="fail")
    results = {Probe.ROLLOUT_HOOKS: (check("a", verdicts[0]), check("b", verdicts[1]))}
    decision = decide(spec, running(Phase.PROGRESSING, 25), seen(route=Weights.canary_at(25)), NOW, results)
    assert isinstance(decision, Decision)
    passed = all(v is Verdict.PASS for v in verdicts)
    # Unavailable (a metrics provider's verdict) holds: no failure, no advance.
    held = not passed and all(v in (Verdict.PASS, Verdict.UNAVAILABLE) for v in verdicts)
    assert decision.status.canary_weight == (50 if passed else 25)
    assert decision.status.failed_checks == (0 if passed or held else 1)
    assert decision.status.checks == results[Probe.ROLLOUT_HOOKS]


# --- confirm-traffic-increase ----------------------------------------------------------------------


@pytest.mark.parametrize("weight", [0, 25], ids=lambda w: f"w{w}")
@pytest.mark.parametrize("gate", VERDICTS, ids=str)
def test_confirm_traffic_increase_holds_the_weight(gate: Verdict, weight: int) -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], webhooks=[hook("confirm-traffic-increase")])

    def answer(probe: Probe) -> tuple[Any, ...]:
        return answered(gate if probe is Probe.CONFIRM_TRAFFIC_INCREASE else Verdict.PASS)(probe)

    observed = seen(route=Weights.canary_at(weight))
    decision, asked = decide_all(spec, running(Phase.PROGRESSING, weight), observed, NOW, answer)
    assert_safe(decision, observed)
    assert asked[-1] == {Probe.CONFIRM_TRAFFIC_INCREASE}
    new = decision.status
    assert new.failed_checks == 0, "a closed gate is not a failed check"
    assert new.checks[-1].verdict is gate
    if gate is Verdict.PASS:
        assert new.canary_weight == weight + 25
        assert decision.actions == (SetRoute(Weights.canary_at(weight + 25)),)
    else:
        assert new.canary_weight == weight
        assert decision.actions == ()
        assert reasons(decision) == ["Waiting"]
        assert decision.requeue_after == INTERVAL


def test_confirm_traffic_increase_is_not_asked_for_promotion_or_blue_green() -> None:
    canary = make_spec(webhooks=[hook("confirm-traffic-increase")])
    decision, asked = decide_all(canary, running(Phase.PROGRESSING, 50), seen(route=Weights.canary_at(50)), NOW,
                                 answered(Verdict.FAIL))
    assert asked == [] and decision.status.phase is Phase.PROMOTING
    bg = make_spec(stepWeight=None, maxWeight=None, iterations=2, webhooks=[hook("confirm-traffic-increase")])
    decision, asked = decide_all(bg, running(Phase.PROGRESSING, 0), seen(), NOW, answered(Verdict.FAIL))
    assert asked == [] and decision.status.iterations == 1


# --- blue/green iterations and confirm-promotion ------------------------------------------------------


@pytest.mark.parametrize("gate", [None, *VERDICTS], ids=lambda g: f"gate-{g}")
@pytest.mark.parametrize("done, total", [(0, 1), (0, 3), (1, 3), (2, 3)], ids=lambda v: str(v))
def test_blue_green_iterations(done: int, total: int, gate: Verdict | None) -> None:
    hooks = [hook("confirm-promotion")] if gate is not None else []
    spec = make_spec(stepWeight=None, maxWeight=None, iterations=total, metrics=[SUCCESS_RATE], webhooks=hooks)
    status = running(Phase.PROGRESSING, 0, iterations=done)

    def answer(probe: Probe) -> tuple[Any, ...]:
        return answered(gate if probe is Probe.CONFIRM_PROMOTION and gate else Verdict.PASS)(probe)

    decision, asked = decide_all(spec, status, seen(), NOW, answer)
    new = decision.status
    assert new.canary_weight == 0, "blue/green never splits traffic"
    assert new.iterations == done + 1
    finished = done + 1 >= total
    assert (Probe.CONFIRM_PROMOTION in set().union(*asked)) is (finished and gate is not None)
    if not finished:
        assert new.phase is Phase.PROGRESSING
        assert reasons(decision) == ["Advanced"]
    elif gate in (None, Verdict.PASS):
        assert new.phase is Phase.PROMOTING
        assert decision.actions == (PromotePrimary("rev2"),)
    else:
        assert new.phase is Phase.WAITING_PROMOTION
    assert all(a.weights == ALL_PRIMARY for a in decision.actions if isinstance(a, SetRoute))
