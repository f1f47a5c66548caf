from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from canary.domain.status import CheckKind, CheckResult, Phase, Verdict
from canary.domain.machine import RollbackCause
from canary.telemetry import ControllerMetrics, RunResult

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)


@pytest.fixture
def metrics() -> ControllerMetrics:
    return ControllerMetrics(CollectorRegistry())


def value(m: ControllerMetrics, series: str, /, **labels: str) -> float | None:
    return m.registry.get_sample_value(series, labels)


def exposition(m: ControllerMetrics) -> str:
    return generate_latest(m.registry).decode()


def test_each_instance_has_its_own_registry() -> None:
    # Two instances on the global registry would raise "Duplicated timeseries".
    a, b = ControllerMetrics(), ControllerMetrics()
    a.set_weight("ns", "x", 10)
    assert value(b, "canary_weight", namespace="ns", name="x") is None


def test_phase_gauge_is_one_hot(metrics: ControllerMetrics) -> None:
    metrics.set_phase("test", "podinfo", Phase.PROGRESSING)
    metrics.set_phase("test", "podinfo", Phase.SUCCEEDED)

    per_phase = {p: value(metrics, "canary_phase", namespace="test", name="podinfo", phase=p.value) for p in Phase}
    assert per_phase[Phase.SUCCEEDED] == 1
    assert {p: v for p, v in per_phase.items() if p is not Phase.SUCCEEDED} == {
        p: 0 for p in Phase if p is not Phase.SUCCEEDED
    }


def test_gauges_and_counters_appear_in_the_exposition(metrics: ControllerMetrics) -> None:
    metrics.set_weight("test", "podinfo", 30)
    metrics.set_failed_checks("test", "podinfo", 2)
    metrics.promoted("test", "podinfo")
    metrics.rolled_back("test", "podinfo", RollbackCause.THRESHOLD)
    metrics.reconcile_failed("test", "podinfo")
    metrics.run_finished("test", "podinfo", RunResult.SUCCEEDED, timedelta(minutes=7))

    text = exposition(metrics)
    for line in (
        'canary_weight{name="podinfo",namespace="test"} 30.0',
        'canary_failed_checks{name="podinfo",namespace="test"} 2.0',
        'canary_promotions_total{name="podinfo",namespace="test"} 1.0',
        'canary_rollbacks_total{name="podinfo",namespace="test",reason="threshold"} 1.0',
        'canary_reconcile_errors_total{name="podinfo",namespace="test"} 1.0',
        'canary_run_duration_seconds_count{name="podinfo",namespace="test",result="succeeded"} 1.0',
        'canary_run_duration_seconds_sum{name="podinfo",namespace="test",result="succeeded"} 420.0',
    ):
        assert line in text


@pytest.mark.parametrize(
    ("given", "label"),
    [
        pytest.param(RollbackCause.DEADLINE, "deadline", id="enum"),
        pytest.param("annotation", "annotation", id="known-string"),
        pytest.param("query returned NaN for pod podinfo-7d9f", "other", id="free-text"),
    ],
)
def test_rollback_reason_label_stays_bounded(metrics: ControllerMetrics, given: str, label: str) -> None:
    metrics.rolled_back("ns", "x", given)
    assert value(metrics, "canary_rollbacks_total", namespace="ns", name="x", reason=label) == 1


def test_run_result_label_stays_bounded(metrics: ControllerMetrics) -> None:
    metrics.run_finished("ns", "x", "exploded", timedelta(seconds=1))
    assert value(metrics, "canary_run_duration_seconds_count", namespace="ns", name="x", result="other") == 1


def check(name: str, value: float | None, kind: CheckKind = CheckKind.METRIC) -> CheckResult:
    verdict = Verdict.NO_DATA if value is None else Verdict.PASS
    return CheckResult(name=name, kind=kind, source="q", verdict=verdict, time=NOW, value=value)


def test_observe_checks(metrics: ControllerMetrics) -> None:
    metrics.observe_checks("ns", "x", [check("success-rate", 99.5), check("latency", 120.0), check("gate", None, CheckKind.WEBHOOK)])
    assert value(metrics, "canary_check_value", namespace="ns", name="x", check="success-rate") == 99.5
    assert value(metrics, "canary_check_value", namespace="ns", name="x", check="gate") is None

    # latency went quiet, success-rate was removed from the spec
    metrics.observe_checks("ns", "x", [check("latency", None)])
    latency = value(metrics, "canary_check_value", namespace="ns", name="x", check="latency")
    assert latency is not None and math.isnan(latency)
    assert value(metrics, "canary_check_value", namespace="ns", name="x", check="success-rate") is None


def test_forget_removes_every_series_of_that_canary_only(metrics: ControllerMetrics) -> None:
    for name in ("gone", "kept"):
        metrics.set_phase("ns", name, Phase.PROGRESSING)
        metrics.set_weight("ns", name, 10)
        metrics.set_check_value("ns", name, "success-rate", 99.0)
        metrics.set_failed_checks("ns", name, 1)
        metrics.promoted("ns", name)
        metrics.rolled_back("ns", name, RollbackCause.WEBHOOK)
        metrics.run_finished("ns", name, RunResult.FAILED, timedelta(seconds=90))
        metrics.reconcile_failed("ns", name)
    assert 'name="gone"' in exposition(metrics)

    metrics.forget("ns", "gone")

    text = exposition(metrics)
    assert 'name="gone"' not in text
    assert text.count('name="kept"') > 10
    metrics.forget("ns", "never-seen")  # harmless


def test_forget_then_reuse_starts_fresh(metrics: ControllerMetrics) -> None:
    metrics.promoted("ns", "x")
    metrics.forget("ns", "x")
    metrics.promoted("ns", "x")
    assert value(metrics, "canary_promotions_total", namespace="ns", name="x") == 1
    metrics.forget("ns", "x")
    assert 'name="x"' not in exposition(metrics)


def test_metric_queries_are_counted_by_kind_from_zero(metrics: ControllerMetrics) -> None:
    assert value(metrics, "canary_metric_queries_total", provider="prometheus", kind="batched") == 0
    metrics.metric_query_sent("batched")
    metrics.metric_query_sent("single")
    metrics.metric_query_sent("single")
    metrics.metric_query_sent("free text")
    assert value(metrics, "canary_metric_queries_total", provider="prometheus", kind="batched") == 1
    assert value(metrics, "canary_metric_queries_total", provider="prometheus", kind="single") == 2
    assert value(metrics, "canary_metric_queries_total", provider="prometheus", kind="other") == 1


def test_counters_and_run_histograms_keep_counting_across_scrapes(metrics: ControllerMetrics) -> None:
    # The series are built at scrape time from each Canary's record: a scrape must not reset them.
    metrics.promoted("ns", "x")
    metrics.run_finished("ns", "x", RunResult.SUCCEEDED, timedelta(seconds=45))
    exposition(metrics)
    metrics.promoted("ns", "x")
    metrics.run_finished("ns", "x", RunResult.SUCCEEDED, timedelta(seconds=400))
    assert value(metrics, "canary_promotions_total", namespace="ns", name="x") == 2
    labels = {"namespace": "ns", "name": "x", "result": "succeeded"}
    assert value(metrics, "canary_run_duration_seconds_count", **labels) == 2
    assert value(metrics, "canary_run_duration_seconds_sum", **labels) == 445
    assert value(metrics, "canary_run_duration_seconds_bucket", le="60.0", **labels) == 1
    assert value(metrics, "canary_run_duration_seconds_bucket", le="600.0", **labels) == 2
    assert value(metrics, "canary_run_duration_seconds_bucket", le="+Inf", **labels) == 2


def test_a_second_collector_of_the_canary_series_is_refused() -> None:
    registry = CollectorRegistry()
    ControllerMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        ControllerMetrics(registry)
