"""Verdicts of single metric checks, of a tick's checks together, and of gates."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta

import pytest

from canary.domain.analysis import (
    MIN_QUERY_WINDOW, TickJudgement, TickOutcome, evaluate_metric, gate_open, judge_tick, query_window,
    summarize_failures,
)
from canary.domain.spec import AnalysisSpec, MetricSpec, NoDataPolicy, TemplateRef, ThresholdRange
from canary.domain.status import CheckKind, Verdict
from tests.domain.world import T0, check

RATE = MetricSpec(name="request-success-rate", threshold_range=ThresholdRange(min=99))
LATENCY = MetricSpec(name="request-duration", threshold_range=ThresholdRange(max=500))
BAND = MetricSpec(name="band", threshold_range=ThresholdRange(min=10, max=20))


@pytest.mark.parametrize("metric, value, verdict", [
    (RATE, 99.5, Verdict.PASS),
    (RATE, 99.0, Verdict.PASS),
    (RATE, 98.99, Verdict.FAIL),
    (RATE, 0.0, Verdict.FAIL),
    (RATE, math.inf, Verdict.PASS),
    (LATENCY, 500.0, Verdict.PASS),
    (LATENCY, 500.1, Verdict.FAIL),
    (LATENCY, 0.0, Verdict.PASS),
    (LATENCY, math.inf, Verdict.FAIL),
    (BAND, 10.0, Verdict.PASS),
    (BAND, 20.0, Verdict.PASS),
    (BAND, 9.9, Verdict.FAIL),
    (BAND, 20.1, Verdict.FAIL),
    (BAND, -math.inf, Verdict.FAIL),
], ids=lambda v: str(v) if not isinstance(v, MetricSpec) else v.name)
def test_value_against_bounds(metric: MetricSpec, value: float, verdict: Verdict) -> None:
    result = evaluate_metric(metric, value=value, source="q", now=T0, samples=100)
    assert result.verdict is verdict
    assert result.value == value
    assert (result.min, result.max) == (metric.threshold_range.min, metric.threshold_range.max)
    assert result.kind is CheckKind.METRIC and result.source == "q" and result.time == T0
    if verdict is Verdict.FAIL:
        assert ("below the minimum" in result.message) or ("above the maximum" in result.message)
    else:
        assert result.message == "within bounds"


@pytest.mark.parametrize("value", [None, math.nan], ids=["none", "nan"])
@pytest.mark.parametrize("metric", [RATE, LATENCY, BAND], ids=lambda m: m.name)
def test_no_value_is_no_data_never_a_pass(metric: MetricSpec, value: float | None) -> None:
    result = evaluate_metric(metric, value=value, source="q", now=T0)
    assert result.verdict is Verdict.NO_DATA
    assert "no traffic" in result.message


@pytest.mark.parametrize("samples, min_samples, verdict", [
    (None, 100, Verdict.PASS),  # the provider could not count: judge the value
    (0, 1, Verdict.NO_DATA),
    (9, 10, Verdict.NO_DATA),
    (10, 10, Verdict.PASS),
    (11, 10, Verdict.PASS),
    (0.5, 1, Verdict.NO_DATA),
])
def test_minimum_sample_size(samples: float | None, min_samples: int, verdict: Verdict) -> None:
    result = evaluate_metric(RATE, value=100.0, source="q", now=T0, samples=samples, min_samples=min_samples)
    assert result.verdict is verdict
    assert result.samples == samples
    if verdict is Verdict.NO_DATA:
        assert f"fewer than minSampleSize {min_samples}" in result.message
        assert result.value == 100.0


@pytest.mark.parametrize("value", [None, 50.0, 100.0])
def test_an_error_wins_over_the_value(value: float | None) -> None:
    result = evaluate_metric(RATE, value=value, source="q", now=T0, samples=1000, error="connection refused")
    assert result.verdict is Verdict.ERROR
    assert result.message == "connection refused"


def test_too_few_samples_that_could_still_pass_are_no_data() -> None:
    # A quiet service must not fail on a handful of requests (Flagger #883) while the rest of
    # minSampleSize could still bring the rate above the minimum: 1 failure in 1000 is 99.9%.
    result = evaluate_metric(RATE, value=50.0, source="q", now=T0, samples=2, min_samples=1000)
    assert result.verdict is Verdict.NO_DATA


@pytest.mark.parametrize("samples, value, min_samples, verdict", [
    # 2 failures of 10 requests, minSampleSize 100: at best 98% < 99: already lost.
    (10, 80.0, 100, Verdict.FAIL),
    # 1 failure of 10, minSampleSize 100: at best exactly 99%, which passes: wait for more.
    (10, 90.0, 100, Verdict.NO_DATA),
    # 1 failure of 10, minSampleSize 50: at best 98%.
    (10, 90.0, 50, Verdict.FAIL),
    # No failure: nothing is guaranteed.
    (10, 100.0, 100, Verdict.NO_DATA),
    # Fractional counts (increase() extrapolates): 1.5 failures of 3, minSampleSize 100: 98.5%.
    (3, 50.0, 100, Verdict.FAIL),
    # At minSampleSize the value is judged as it is.
    (100, 98.0, 100, Verdict.FAIL),
])
def test_failures_that_guarantee_a_breach_fail_below_min_sample_size(
        samples: float, value: float, min_samples: int, verdict: Verdict) -> None:
    result = evaluate_metric(RATE, value=value, source="q", now=T0, samples=samples, min_samples=min_samples)
    assert result.verdict is verdict, result.message
    assert result.value == value and result.samples == samples
    if verdict is Verdict.FAIL and samples < min_samples:
        failures = samples * (100 - value) / 100
        assert result.message.startswith(f"{failures:g} failed requests among {samples:g}"), result.message
        assert f"even if every request up to minSampleSize {min_samples} succeeds" in result.message


@pytest.mark.parametrize("metric", [
    # A maximum only: failures cannot push a success rate above it.
    MetricSpec(name="request-success-rate", threshold_range=ThresholdRange(max=99.5)),
    # A template named like the builtin: its value is not a known share of samples.
    MetricSpec(name="request-success-rate", threshold_range=ThresholdRange(min=99), template_ref=TemplateRef("t")),
    LATENCY,
], ids=["max-only", "template", "latency"])
def test_only_the_builtin_success_rate_minimum_can_be_lost_early(metric: MetricSpec) -> None:
    result = evaluate_metric(metric, value=0.0, source="q", now=T0, samples=10, min_samples=100)
    assert result.verdict is Verdict.NO_DATA


def test_an_unavailable_provider_is_its_own_verdict() -> None:
    result = evaluate_metric(RATE, value=None, source="q", now=T0, unavailable="ProviderUnavailable: refused")
    assert result.verdict is Verdict.UNAVAILABLE
    assert result.message == "the metrics provider is unavailable: ProviderUnavailable: refused"
    # A check's own fault stays an Error.
    both = evaluate_metric(RATE, value=None, source="q", now=T0, error="bad query", unavailable="down")
    assert both.verdict is Verdict.ERROR


HOLD_ANALYSIS = AnalysisSpec(step_weight=10, consecutive_error_limit=4, consecutive_no_data_limit=10)


def _outcome(verdicts: tuple[Verdict, ...], policy: NoDataPolicy) -> TickOutcome:
    """The outcome of a first tick (both counters at 0, limits above 0)."""
    if Verdict.FAIL in verdicts or Verdict.ERROR in verdicts:
        return TickOutcome.FAIL
    if Verdict.NO_DATA in verdicts and policy is NoDataPolicy.FAIL:
        return TickOutcome.FAIL
    if Verdict.UNAVAILABLE in verdicts:
        return TickOutcome.OUTAGE
    if Verdict.NO_DATA in verdicts:
        return TickOutcome.HOLD
    return TickOutcome.PASS


ALL_COMBOS = [c for n in range(0, 4) for c in itertools.combinations_with_replacement(list(Verdict), n)]


@pytest.mark.parametrize("policy", list(NoDataPolicy), ids=str)
@pytest.mark.parametrize("verdicts", ALL_COMBOS, ids=lambda vs: "+".join(vs) or "none")
def test_tick_outcome(verdicts: tuple[Verdict, ...], policy: NoDataPolicy) -> None:
    checks = [check(f"c{i}", v) for i, v in enumerate(verdicts)]
    analysis = AnalysisSpec(step_weight=10, no_data_policy=policy)
    expected = _outcome(verdicts, policy)
    judged = judge_tick(checks, analysis, consecutive_errors=0, consecutive_no_data=0)
    assert judged.outcome is expected
    assert judged.limit_reached == ""
    assert judged.consecutive_errors == (1 if Verdict.UNAVAILABLE in verdicts else 0)
    assert judged.consecutive_no_data == (1 if Verdict.NO_DATA in verdicts else 0)
    # Order never matters.
    assert judge_tick(reversed(checks), analysis, consecutive_errors=0, consecutive_no_data=0) == judged


def _run(ticks: list[tuple[Verdict, ...]], analysis: AnalysisSpec = HOLD_ANALYSIS) -> list[TickJudgement]:
    errors = quiet = 0
    out = []
    for verdicts in ticks:
        judged = judge_tick([check(f"c{i}", v) for i, v in enumerate(verdicts)], analysis,
                            consecutive_errors=errors, consecutive_no_data=quiet)
        errors, quiet = judged.consecutive_errors, judged.consecutive_no_data
        out.append(judged)
    return out


OUTAGE_TICK = (Verdict.UNAVAILABLE, Verdict.PASS)


def test_an_outage_holds_up_to_the_error_limit_then_each_tick_fails() -> None:
    judged = _run([OUTAGE_TICK] * 6)
    assert [j.outcome for j in judged] == [TickOutcome.OUTAGE] * 4 + [TickOutcome.FAIL] * 2
    assert [j.consecutive_errors for j in judged] == [1, 2, 3, 4, 5, 6]
    assert judged[4].limit_reached == ("the metrics provider was unavailable 5 ticks in a row, more than "
                                       "consecutiveErrorLimit 4")


def test_a_tick_with_data_resets_the_error_count() -> None:
    judged = _run([OUTAGE_TICK] * 4 + [(Verdict.PASS,)] + [OUTAGE_TICK] * 4)
    assert [j.consecutive_errors for j in judged] == [1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert TickOutcome.FAIL not in {j.outcome for j in judged}
    # A failing check is data too: the next outage starts counting from 1.
    judged = _run([OUTAGE_TICK] * 3 + [(Verdict.FAIL,), OUTAGE_TICK])
    assert [j.consecutive_errors for j in judged] == [1, 2, 3, 0, 1]


def test_an_error_limit_of_zero_counts_every_outage_tick() -> None:
    judged = _run([OUTAGE_TICK], AnalysisSpec(step_weight=10, consecutive_error_limit=0))
    assert judged[0].outcome is TickOutcome.FAIL
    assert "consecutiveErrorLimit 0" in judged[0].limit_reached


def test_no_data_holds_up_to_its_limit_then_each_tick_fails() -> None:
    analysis = AnalysisSpec(step_weight=10, consecutive_no_data_limit=3)
    judged = _run([(Verdict.NO_DATA,)] * 5, analysis)
    assert [j.outcome for j in judged] == [TickOutcome.HOLD] * 3 + [TickOutcome.FAIL] * 2
    assert judged[3].limit_reached == "no data 4 ticks in a row, more than consecutiveNoDataLimit 3"


def test_data_resets_the_no_data_count_and_an_outage_leaves_it() -> None:
    analysis = AnalysisSpec(step_weight=10, consecutive_no_data_limit=3)
    ticks = [(Verdict.NO_DATA,)] * 2 + [(Verdict.UNAVAILABLE,)] + [(Verdict.NO_DATA,), (Verdict.PASS,), (Verdict.NO_DATA,)]
    judged = _run(ticks, analysis)
    assert [j.consecutive_no_data for j in judged] == [1, 2, 2, 3, 0, 1]
    assert [j.outcome for j in judged] == [TickOutcome.HOLD, TickOutcome.HOLD, TickOutcome.OUTAGE, TickOutcome.HOLD,
                                           TickOutcome.PASS, TickOutcome.HOLD]


def test_an_outage_with_no_data_counts_both_and_either_limit_fails_it() -> None:
    analysis = AnalysisSpec(step_weight=10, consecutive_error_limit=4, consecutive_no_data_limit=2)
    judged = _run([(Verdict.UNAVAILABLE, Verdict.NO_DATA)] * 3, analysis)
    assert [(j.consecutive_errors, j.consecutive_no_data) for j in judged] == [(1, 1), (2, 2), (3, 3)]
    assert [j.outcome for j in judged] == [TickOutcome.OUTAGE, TickOutcome.OUTAGE, TickOutcome.FAIL]
    assert "consecutiveNoDataLimit 2" in judged[2].limit_reached


@pytest.mark.parametrize("verdicts, is_open", [
    ((), True),
    ((Verdict.PASS,), True),
    ((Verdict.PASS, Verdict.PASS), True),
    ((Verdict.FAIL,), False),
    ((Verdict.ERROR,), False),
    ((Verdict.NO_DATA,), False),
    ((Verdict.PASS, Verdict.FAIL), False),
    ((Verdict.PASS, Verdict.ERROR), False),
], ids=lambda v: "+".join(v) if isinstance(v, tuple) else str(v))
def test_gate_opens_only_when_every_webhook_says_yes(verdicts: tuple[Verdict, ...], is_open: bool) -> None:
    assert gate_open([check(f"h{i}", v, CheckKind.WEBHOOK) for i, v in enumerate(verdicts)]) is is_open


def test_summary_names_every_non_passing_check() -> None:
    checks = [
        check("a", Verdict.PASS).with_verdict(Verdict.PASS, "fine"),
        check("b", Verdict.FAIL).with_verdict(Verdict.FAIL, "1 is below the minimum 99"),
        check("c", Verdict.NO_DATA).with_verdict(Verdict.NO_DATA, "no data"),
    ]
    assert summarize_failures(checks) == "b: 1 is below the minimum 99; c: no data"
    assert summarize_failures(checks[:1]) == ""


@pytest.mark.parametrize(
    ("metric_interval", "since_start", "expected"),
    [
        pytest.param(None, timedelta(minutes=5), timedelta(minutes=1), id="a-long-run-queries-the-analysis-interval"),
        pytest.param(timedelta(seconds=30), timedelta(minutes=5), timedelta(seconds=30), id="the-metric-interval-wins"),
        # A run two seconds old must not count what the Deployment served before it (another
        # revision): the window ends where the run began.
        pytest.param(None, timedelta(seconds=2, milliseconds=80), timedelta(seconds=2, milliseconds=80),
                     id="clipped-to-the-run"),
        pytest.param(None, timedelta(0), MIN_QUERY_WINDOW, id="never-below-the-floor"),
    ],
)
def test_the_query_window_never_reaches_before_the_run(metric_interval: timedelta | None, since_start: timedelta,
                                                        expected: timedelta) -> None:
    metric = MetricSpec(name="request-success-rate", threshold_range=ThresholdRange(min=99), interval=metric_interval)
    now = T0 + timedelta(hours=1)
    assert query_window(metric, timedelta(minutes=1), now - since_start, now) == expected
    assert query_window(metric, timedelta(minutes=1), None, now) == (metric_interval or timedelta(minutes=1))
