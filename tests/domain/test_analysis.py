"""Verdicts of single metric checks, of a tick's checks together, and of gates."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta

import pytest

from canary.domain.analysis import (
    MIN_QUERY_WINDOW, TickOutcome, evaluate_metric, gate_open, query_window, summarize_failures, tick_outcome,
)
from canary.domain.spec import MetricSpec, NoDataPolicy, ThresholdRange
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


def test_too_few_samples_wins_over_a_failing_value() -> None:
    # A quiet service must not roll back on a handful of requests (Flagger #883).
    result = evaluate_metric(RATE, value=0.0, source="q", now=T0, samples=2, min_samples=10)
    assert result.verdict is Verdict.NO_DATA


def _outcome(verdicts: tuple[Verdict, ...], policy: NoDataPolicy) -> TickOutcome:
    if Verdict.FAIL in verdicts or Verdict.ERROR in verdicts:
        return TickOutcome.FAIL
    if Verdict.NO_DATA in verdicts:
        return TickOutcome.FAIL if policy is NoDataPolicy.FAIL else TickOutcome.HOLD
    return TickOutcome.PASS


ALL_COMBOS = [c for n in range(0, 4) for c in itertools.combinations_with_replacement(list(Verdict), n)]


@pytest.mark.parametrize("policy", list(NoDataPolicy), ids=str)
@pytest.mark.parametrize("verdicts", ALL_COMBOS, ids=lambda vs: "+".join(vs) or "none")
def test_tick_outcome(verdicts: tuple[Verdict, ...], policy: NoDataPolicy) -> None:
    checks = [check(f"c{i}", v) for i, v in enumerate(verdicts)]
    assert tick_outcome(checks, policy) is _outcome(verdicts, policy)
    # Order never matters.
    assert tick_outcome(reversed(checks), policy) is _outcome(verdicts, policy)


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
