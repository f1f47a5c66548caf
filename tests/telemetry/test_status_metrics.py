"""The series the dashboard and the chart's alerts read: leadership, Stalled, and each check's bounds."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from canary.domain.machine import RollbackCause
from canary.domain.status import CanaryStatus, CheckKind, CheckResult, Condition, ConditionType, Phase, Verdict
from canary.telemetry import ControllerMetrics

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)


@pytest.fixture
def metrics() -> ControllerMetrics:
    return ControllerMetrics(CollectorRegistry())


def value(m: ControllerMetrics, series: str, /, **labels: str) -> float | None:
    return m.registry.get_sample_value(series, labels)


def bounds(m: ControllerMetrics, check: str, namespace: str = "ns", name: str = "x") -> tuple[float | None, float | None]:
    labels = {"namespace": namespace, "name": name, "check": check}
    return value(m, "canary_check_min", **labels), value(m, "canary_check_max", **labels)


def check(name: str, *, low: float | None = None, high: float | None = None,
          kind: CheckKind = CheckKind.METRIC, measured: float | None = 1.0) -> CheckResult:
    return CheckResult(name=name, kind=kind, source="q", verdict=Verdict.PASS, time=NOW, value=measured,
                       min=low, max=high)


def stalled_condition(stalled: bool) -> Condition:
    return Condition(ConditionType.STALLED, stalled, "RolledBack" if stalled else "Progressing", "", NOW)


# --- canary_leader -------------------------------------------------------------------------------


def test_leader_is_zero_until_leadership_is_tracked(metrics: ControllerMetrics) -> None:
    assert value(metrics, "canary_leader") == 0


def test_leader_follows_the_leadership_flag_at_each_scrape(metrics: ControllerMetrics) -> None:
    leading = False
    metrics.track_leadership(lambda: leading)
    assert value(metrics, "canary_leader") == 0
    leading = True
    assert value(metrics, "canary_leader") == 1
    leading = False
    assert value(metrics, "canary_leader") == 0


def test_sharded_the_bucket_gauge_and_leader_follow_the_buckets_held(metrics: ControllerMetrics) -> None:
    held = 0
    metrics.track_shards(lambda: held)
    assert (value(metrics, "canary_shard_buckets"), value(metrics, "canary_leader")) == (0, 0)
    held = 4
    assert (value(metrics, "canary_shard_buckets"), value(metrics, "canary_leader")) == (4, 1)
    held = 0
    assert value(metrics, "canary_leader") == 0


def test_leader_has_no_canary_labels_and_survives_forget(metrics: ControllerMetrics) -> None:
    metrics.track_leadership(lambda: True)
    metrics.set_stalled("ns", "x", True)
    metrics.forget("ns", "x")
    assert "canary_leader 1.0" in generate_latest(metrics.registry).decode()


# --- canary_stalled ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        pytest.param((), 0, id="no-conditions-yet"),
        pytest.param((stalled_condition(False),), 0, id="stalled-false"),
        pytest.param((stalled_condition(True),), 1, id="stalled-true"),
    ],
)
def test_stalled_mirrors_the_condition(metrics: ControllerMetrics, conditions: tuple[Condition, ...],
                                       expected: float) -> None:
    metrics.observe_status("ns", "x", CanaryStatus(phase=Phase.FAILED, conditions=conditions))
    assert value(metrics, "canary_stalled", namespace="ns", name="x") == expected


def test_stalled_goes_back_to_zero(metrics: ControllerMetrics) -> None:
    metrics.observe_status("ns", "x", CanaryStatus(phase=Phase.FAILED, conditions=(stalled_condition(True),)))
    metrics.observe_status("ns", "x", CanaryStatus(phase=Phase.PROGRESSING, conditions=(stalled_condition(False),)))
    assert value(metrics, "canary_stalled", namespace="ns", name="x") == 0


def test_observe_status_records_phase_weight_failed_checks_and_checks(metrics: ControllerMetrics) -> None:
    status = CanaryStatus(phase=Phase.PROGRESSING, canary_weight=40, failed_checks=1,
                          checks=(check("success-rate", low=99.0, measured=99.5),))
    metrics.observe_status("ns", "x", status)
    assert value(metrics, "canary_phase", namespace="ns", name="x", phase="Progressing") == 1
    assert value(metrics, "canary_weight", namespace="ns", name="x") == 40
    assert value(metrics, "canary_failed_checks", namespace="ns", name="x") == 1
    assert value(metrics, "canary_check_value", namespace="ns", name="x", check="success-rate") == 99.5
    assert bounds(metrics, "success-rate") == (99.0, None)


# --- canary_check_min / canary_check_max ---------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high"),
    [
        pytest.param(99.0, None, id="min-only"),
        pytest.param(None, 500.0, id="max-only"),
        pytest.param(10.0, 20.0, id="both"),
        pytest.param(None, None, id="unbounded"),
    ],
)
def test_bounds_are_present_exactly_when_the_check_has_them(metrics: ControllerMetrics, low: float | None,
                                                            high: float | None) -> None:
    metrics.observe_checks("ns", "x", [check("c", low=low, high=high)])
    assert bounds(metrics, "c") == (low, high)


def test_a_bound_removed_from_the_spec_drops_its_series(metrics: ControllerMetrics) -> None:
    metrics.observe_checks("ns", "x", [check("latency", low=1.0, high=500.0)])
    metrics.observe_checks("ns", "x", [check("latency", high=800.0)])
    assert bounds(metrics, "latency") == (None, 800.0)


def test_a_check_removed_from_the_spec_drops_its_bounds(metrics: ControllerMetrics) -> None:
    metrics.observe_checks("ns", "x", [check("latency", high=500.0), check("success-rate", low=99.0)])
    metrics.observe_checks("ns", "x", [check("success-rate", low=99.0)])
    assert bounds(metrics, "latency") == (None, None)
    assert value(metrics, "canary_check_value", namespace="ns", name="x", check="latency") is None
    assert bounds(metrics, "success-rate") == (99.0, None)


def test_webhook_and_judge_checks_have_no_bound_series(metrics: ControllerMetrics) -> None:
    metrics.observe_checks("ns", "x", [check("gate", low=0.0, high=1.0, kind=CheckKind.WEBHOOK),
                                       check("judge", low=0.0, high=20.0, kind=CheckKind.JUDGE)])
    assert bounds(metrics, "gate") == (None, None)
    assert bounds(metrics, "judge") == (None, None)


def test_bounds_of_one_canary_leave_another_alone(metrics: ControllerMetrics) -> None:
    metrics.observe_checks("ns", "a", [check("latency", high=500.0)])
    metrics.observe_checks("ns", "b", [])
    assert bounds(metrics, "latency", name="a") == (None, 500.0)


def test_forget_drops_stalled_and_bounds(metrics: ControllerMetrics) -> None:
    for name in ("gone", "kept"):
        metrics.observe_status("ns", name, CanaryStatus(
            phase=Phase.FAILED, conditions=(stalled_condition(True),),
            checks=(check("latency", low=1.0, high=500.0),)))
    metrics.forget("ns", "gone")

    assert 'name="gone"' not in generate_latest(metrics.registry).decode()
    assert value(metrics, "canary_stalled", namespace="ns", name="kept") == 1
    assert bounds(metrics, "latency", name="kept") == (1.0, 500.0)


# --- counters start at zero ----------------------------------------------------------------------


def test_counters_are_exported_at_zero_from_the_first_pass(metrics: ControllerMetrics) -> None:
    # So that increase() over a window that starts before the first event counts that event.
    metrics.observe_status("ns", "x", CanaryStatus(phase=Phase.INITIALIZED))
    assert value(metrics, "canary_promotions_total", namespace="ns", name="x") == 0
    assert value(metrics, "canary_reconcile_errors_total", namespace="ns", name="x") == 0
    for cause in RollbackCause:
        assert value(metrics, "canary_rollbacks_total", namespace="ns", name="x", reason=cause.value) == 0


def test_later_passes_do_not_reset_the_counters(metrics: ControllerMetrics) -> None:
    metrics.observe_status("ns", "x", CanaryStatus(phase=Phase.PROGRESSING))
    metrics.promoted("ns", "x")
    metrics.rolled_back("ns", "x", RollbackCause.THRESHOLD)
    metrics.observe_status("ns", "x", CanaryStatus(phase=Phase.SUCCEEDED))
    assert value(metrics, "canary_promotions_total", namespace="ns", name="x") == 1
    assert value(metrics, "canary_rollbacks_total", namespace="ns", name="x", reason="threshold") == 1


def test_forget_then_a_new_pass_starts_the_counters_again(metrics: ControllerMetrics) -> None:
    metrics.observe_status("ns", "x", CanaryStatus(phase=Phase.PROGRESSING))
    metrics.forget("ns", "x")
    assert value(metrics, "canary_promotions_total", namespace="ns", name="x") is None
    metrics.observe_status("ns", "x", CanaryStatus(phase=Phase.PROGRESSING))
    assert value(metrics, "canary_promotions_total", namespace="ns", name="x") == 0
