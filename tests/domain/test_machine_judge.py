"""decide() with spec.analysis.judge: when the judge looks, what a rejection does, and what a
weight step carries. The judge's verdicts are given here; tests/domain/test_judge*.py cover how
they are computed."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from canary.domain.actions import SetRoute
from canary.domain.machine import Decision, NeedProbes, Probe, RollbackCause, decide
from canary.domain.status import CanaryStatus, CheckKind, CheckResult, JudgeState, Phase, Verdict
from canary.domain.weights import ALL_PRIMARY, Weights
from tests.domain.world import INTERVAL, NOW, SUCCESS_RATE, check, make_spec, running, seen

LOOK = timedelta(seconds=15)
SPEC = make_spec(judge={"lookEvery": "15s"}, metrics=[SUCCESS_RATE])


def judged(verdict: Verdict, evidence: float = 2.0) -> tuple[CheckResult, ...]:
    """Both tests' checks: 2% of 50 canary requests failed, 0% of 150 primary ones."""
    return tuple(CheckResult(name=f"judge/{t}", kind=CheckKind.JUDGE, source="q", verdict=verdict, time=NOW,
                             value=2.0, primary_value=0.0, samples=50.0, primary_samples=150.0,
                             evidence=evidence, evidence_bound=200.0, message=f"{t} {verdict}")
                 for t in ("errorRate", "latency"))


def between_ticks(weight: int = 20, last_look: timedelta | None = LOOK, **changes: object) -> CanaryStatus:
    """Mid-interval: the last tick 30s ago, the last look ``last_look`` ago."""
    state = JudgeState(step_started=NOW - timedelta(seconds=30),
                       last_look=None if last_look is None else NOW - last_look, carried={"latency": 1.5},
                       error_steps=((1.0, 0.0, 10.0, 90.0),))
    return running(Phase.PROGRESSING, weight, last_analysis_time=NOW - timedelta(seconds=30), judge=state,
                   **changes)


def decide_with(status: CanaryStatus, judge: tuple[CheckResult, ...], metrics: Verdict = Verdict.PASS,
                ) -> tuple[Decision, set[Probe]]:
    asked: set[Probe] = set()
    results: dict[Probe, tuple[CheckResult, ...]] = {}
    for _ in range(4):
        observed = seen(route=Weights(100 - status.canary_weight, status.canary_weight))
        result = decide(SPEC, status, observed, NOW, results)
        if isinstance(result, Decision):
            return result, asked
        assert isinstance(result, NeedProbes)
        asked |= result.probes
        for probe in result.probes:
            results[probe] = judge if probe is Probe.JUDGE else (check(probe.value, metrics),)
    raise AssertionError("decide kept asking")


def test_a_look_is_due_between_ticks_and_asks_the_judge_alone() -> None:
    decision, asked = decide_with(between_ticks(), judged(Verdict.PASS))
    assert asked == {Probe.JUDGE}
    status = decision.status
    assert status.phase is Phase.PROGRESSING and status.canary_weight == 20
    assert status.judge.last_look == NOW and status.judge.carried == {"latency": 1.5}
    assert status.last_analysis_time == NOW - timedelta(seconds=30)  # a look is not a tick
    assert [c.name for c in status.checks if c.kind is CheckKind.JUDGE] == ["judge/errorRate", "judge/latency"]
    assert decision.requeue_after == LOOK


def test_no_look_before_lookEvery_has_passed() -> None:
    decision, asked = decide_with(between_ticks(last_look=timedelta(seconds=5)), judged(Verdict.FAIL))
    assert asked == set()
    assert decision.status.phase is Phase.PROGRESSING
    assert decision.requeue_after == timedelta(seconds=10)


def test_no_look_while_the_canary_has_no_traffic() -> None:
    decision, asked = decide_with(between_ticks(weight=0), judged(Verdict.FAIL))
    assert asked == set() and decision.status.phase is Phase.PROGRESSING


@pytest.mark.parametrize("at_tick", [False, True], ids=["between-ticks", "at-a-tick"])
def test_a_rejection_aborts_the_run_whatever_the_failed_check_count(at_tick: bool) -> None:
    status = between_ticks(failed_checks=0)
    if at_tick:
        status = status.with_(last_analysis_time=NOW - INTERVAL)
    decision, _ = decide_with(status, judged(Verdict.FAIL, evidence=450.0))
    assert decision.status.phase is Phase.FAILED and decision.status.canary_weight == 0
    assert decision.status.failed_checks == 0
    assert decision.status.message.startswith("aborted by the judge: judge/errorRate")
    assert [e.reason for e in decision.events] == ["Aborted"]
    assert decision.outcome is not None and decision.outcome.cause is RollbackCause.JUDGE
    assert any(isinstance(a, SetRoute) and a.weights == ALL_PRIMARY for a in decision.actions)
    assert [c.verdict for c in decision.status.checks if c.kind is CheckKind.JUDGE] == [Verdict.FAIL] * 2


def test_a_passing_tick_carries_the_steps_evidence_into_the_next_step() -> None:
    status = between_ticks(weight=20).with_(last_analysis_time=NOW - INTERVAL)
    decision, asked = decide_with(status, judged(Verdict.PASS, evidence=math.exp(2.0)))
    assert Probe.JUDGE in asked and Probe.METRICS in asked
    new = decision.status
    assert new.canary_weight == 45  # stepWeight 25
    assert new.judge.step_started == NOW and new.judge.last_look == NOW
    # The latency check's evidence is over the run (carried 1.5 + this step's 0.5): the log adds up.
    assert new.judge.carried == {"latency": pytest.approx(2.0)}
    # The error test keeps the step's counts: 1 of 50 canary requests failed, none of 150.
    assert new.judge.error_steps == ((1.0, 0.0, 10.0, 90.0), pytest.approx((1.0, 0.0, 50.0, 150.0)))
    assert decision.requeue_after == LOOK, "the judge looks again before the next tick"


def test_the_tick_that_gives_the_canary_its_first_traffic_schedules_a_look() -> None:
    status = running(Phase.PROGRESSING, 0)
    decision, asked = decide_with(status, judged(Verdict.PASS))
    assert Probe.JUDGE not in asked and decision.status.canary_weight == 25
    assert decision.status.judge.step_started == NOW
    assert decision.requeue_after == LOOK


def test_a_held_tick_keeps_the_step_going() -> None:
    status = between_ticks(weight=20).with_(last_analysis_time=NOW - INTERVAL)
    decision, _ = decide_with(status, judged(Verdict.NO_DATA))
    assert decision.status.canary_weight == 20
    assert decision.status.judge.step_started == status.judge.step_started
    assert decision.status.judge.carried == {"latency": 1.5}
    assert decision.status.judge.error_steps == ((1.0, 0.0, 10.0, 90.0),)
    assert [e.reason for e in decision.events] == ["NoTraffic"]


def test_a_new_run_starts_without_evidence() -> None:
    status = between_ticks()
    decision = decide(SPEC, status, seen(rev="rev3", route=None), NOW, {})
    assert isinstance(decision, Decision)
    assert decision.status.judge == JudgeState()
