"""The judge's checks: verdicts, the minIncrease guard, evidence carried across steps."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from canary.domain.judge import carry, evaluate, step_log_evidence, step_window, unmeasured
from canary.domain.judge_spec import ErrorRateJudge, JudgeSpec, LatencyJudge
from canary.domain.samples import ArmSample, Comparison, Histogram
from canary.domain.status import CheckKind, JudgeState, Verdict

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
BOUNDS = (10.0, 50.0, 100.0, 200.0, 500.0, math.inf)
JUDGE = JudgeSpec()


def histogram(*per_bucket: float) -> Histogram:
    cumulative = []
    running = 0.0
    for count in per_bucket:
        running += count
        cumulative.append(running)
    return Histogram(BOUNDS, tuple(cumulative))


def compare(canary: ArmSample, primary: ArmSample) -> Comparison:
    return Comparison(canary=canary, primary=primary, source="q1; q2")


HEALTHY = compare(ArmSample(100, 0, histogram(10, 60, 25, 4, 1, 0)),
                  ArmSample(900, 1, histogram(90, 540, 225, 36, 9, 0)))



def test_a_healthy_canary_passes_both_tests_with_both_versions_shown() -> None:
    errors, latency = evaluate(JUDGE, HEALTHY, JudgeState(), NOW)
    assert (errors.name, latency.name) == ("judge/errorRate", "judge/latency")
    assert errors.kind is CheckKind.JUDGE and errors.verdict is Verdict.PASS
    assert errors.value == 0 and errors.primary_value == pytest.approx(100 / 900)
    assert (errors.samples, errors.primary_samples) == (100, 900)
    assert errors.evidence is not None and errors.evidence < 1
    assert errors.evidence_bound == pytest.approx(200)  # two tests share alpha 0.01
    assert latency.verdict is Verdict.PASS and latency.value is not None and latency.primary_value is not None


def test_a_gross_error_regression_is_rejected() -> None:
    bad = compare(ArmSample(40, 20, histogram(4, 24, 10, 2, 0, 0)), HEALTHY.primary)
    errors, _ = evaluate(JUDGE, bad, JudgeState(), NOW)
    assert errors.verdict is Verdict.FAIL
    assert errors.evidence is not None and errors.evidence >= 200
    assert "reached 200" in errors.message and errors.value == 50


def test_a_slower_canary_is_rejected_by_the_latency_test() -> None:
    slow = compare(ArmSample(300, 0, histogram(0, 30, 90, 120, 50, 10)), HEALTHY.primary)
    _, latency = evaluate(JUDGE, slow, JudgeState(), NOW)
    assert latency.verdict is Verdict.FAIL and "slower" in latency.message


def test_a_certain_but_small_increase_stays_under_minIncrease() -> None:
    # 30 of 10000 canary requests failed, none of 90000 primary ones: conclusive, and 0.3 points.
    tiny = compare(ArmSample(10_000, 30), ArmSample(90_000, 0))
    judge = JudgeSpec(latency=None)
    (errors,) = evaluate(judge, tiny, JudgeState(), NOW)
    assert errors.evidence is not None and errors.evidence > 100
    assert errors.verdict is Verdict.PASS and "minIncrease" in errors.message
    strict = JudgeSpec(latency=None, error_rate=ErrorRateJudge(min_increase=0.1))
    assert evaluate(strict, tiny, JudgeState(), NOW)[0].verdict is Verdict.FAIL


def test_failures_of_earlier_steps_count_with_this_steps() -> None:
    weak = compare(ArmSample(20, 2), ArmSample(180, 0))
    judge = JudgeSpec(latency=None, error_rate=ErrorRateJudge(min_increase=0))
    (alone,) = evaluate(judge, weak, JudgeState(), NOW)
    assert alone.verdict is Verdict.PASS
    # An earlier step whose one failure was the canary's, at share 0.3: not conclusive either.
    past = JudgeState(error_steps=((1.0, 0.0, 30.0, 70.0),))
    assert evaluate(judge, compare(ArmSample(0.001, 0), ArmSample(180, 0)), past, NOW)[0].verdict is Verdict.PASS
    (with_past,) = evaluate(judge, weak, past, NOW)
    assert with_past.verdict is Verdict.FAIL


def test_carry_keeps_each_steps_evidence_and_starts_a_step() -> None:
    state = JudgeState(carried={"latency": 1.0}, error_steps=((1.0, 0.0, 20.0, 80.0),))
    checks = evaluate(JUDGE, HEALTHY, state, NOW)
    step = step_log_evidence(checks[1], state)
    assert step is not None and math.log(checks[1].evidence or 0) == pytest.approx(1.0 + step)
    after = carry(checks, state, NOW)
    assert after.step_started == NOW
    assert after.carried["latency"] == pytest.approx(1.0 + step)
    # The error test keeps the step's counts, as the check shows them: 0 of 100 against 1 of 900.
    assert after.error_steps[0] == (1.0, 0.0, 20.0, 80.0)
    assert after.error_steps[1] == pytest.approx((0.0, 1.0, 100.0, 900.0))


def test_no_canary_requests_is_no_data() -> None:
    quiet = compare(ArmSample(0, 0, histogram(0, 0, 0, 0, 0, 0)), HEALTHY.primary)
    assert [c.verdict for c in evaluate(JUDGE, quiet, JudgeState(), NOW)] == [Verdict.NO_DATA] * 2


def test_latency_without_a_histogram_is_an_error_that_says_why() -> None:
    smi = compare(ArmSample(100, 0), ArmSample(900, 1))
    _, latency = evaluate(JUDGE, smi, JudgeState(), NOW)
    assert latency.verdict is Verdict.ERROR and "errorRate only" in latency.message


def test_a_failed_measurement_marks_every_enabled_test() -> None:
    checks = unmeasured(JudgeSpec(error_rate=None, latency=LatencyJudge()), Verdict.ERROR, "down", NOW)
    assert [(c.name, c.verdict, c.message) for c in checks] == [("judge/latency", Verdict.ERROR, "down")]


def test_the_minIncrease_guard_reads_the_whole_run() -> None:
    # This step alone: no canary failure; the run: 12 of 300 canary requests against 1 of 2700.
    judge = JudgeSpec(latency=None)
    quiet_step = compare(ArmSample(60, 0), ArmSample(540, 0))
    past = JudgeState(error_steps=((6.0, 0.0, 120.0, 1080.0), (6.0, 1.0, 120.0, 1080.0)))
    (errors,) = evaluate(judge, quiet_step, past, NOW)
    assert errors.verdict is Verdict.FAIL, errors.message


@pytest.mark.parametrize(("since_step", "expected"), [
    (timedelta(0), timedelta(seconds=1)),
    (timedelta(milliseconds=400), timedelta(seconds=1)),
    (timedelta(minutes=3, seconds=5), timedelta(minutes=3, seconds=5)),
    (timedelta(days=3), timedelta(hours=24)),
])
def test_a_look_measures_the_step_within_a_metric_checks_range(since_step: timedelta, expected: timedelta) -> None:
    state = JudgeState(step_started=NOW - since_step)
    assert step_window(state, NOW - timedelta(days=9), NOW) == expected
    # Before the first step moved the weight, the run's start is the step's.
    assert step_window(JudgeState(), NOW - since_step, NOW) == expected
