"""The decision benchmark's stand-in for Prometheus: it must answer the controller's queries
exactly from the simulated counters, and refuse anything it does not understand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.simulated_prometheus import SimulatedPrometheus, UnknownQuery, parse
from bench.traffic import BOUNDS, Traffic, Version
from canary.domain.samples import Histogram
from canary.metrics.prometheus import parse_result

HEALTHY = Version(failure_probability=0.001, median_ms=50.0, p99_ms=200.0)
BAD = Version(failure_probability=0.3, median_ms=100.0, p99_ms=400.0)
SELECTOR = 'namespace="bench", deployment="app", direction="inbound"'


def traffic(weight: int = 20, seconds: int = 300) -> Traffic:
    t = Traffic(np.random.default_rng(7), rps=50.0, canary=BAD, primary=HEALTHY, horizon=seconds)
    t.set_weight(weight)
    t.advance_to(seconds)
    return t


def prometheus(t: Traffic) -> SimulatedPrometheus:
    return SimulatedPrometheus(t, namespace="bench", canary="app", primary="app-primary")


def values(answer: object) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(labels.items())): value for labels, value in parse_result(answer)}


def test_success_rate_query_answers_the_exact_increase_per_classification() -> None:
    t = traffic()
    answer = values(prometheus(t).answer(
        f"sum by (classification) (increase(response_total{{{SELECTOR}}}[1m]))"))
    served = t.canary.requests[300] - t.canary.requests[240]
    failed = t.canary.failures[300] - t.canary.failures[240]
    assert answer == {(("classification", "failure"),): failed, (("classification", "success"),): served - failed}


def test_both_versions_by_deployment_and_le() -> None:
    t = traffic()
    selector = SELECTOR.replace('deployment="app"', 'deployment=~"app|app-primary"')
    answer = values(prometheus(t).answer(
        f"sum by (deployment, le) (increase(response_latency_ms_bucket{{{selector}}}[2m]))"))
    for name, series in (("app", t.canary), ("app-primary", t.primary)):
        inf = answer[(("deployment", name), ("le", "+Inf"))]
        assert inf == series.requests[300] - series.requests[180]
        assert answer[(("deployment", name), ("le", "200"))] <= inf


def test_histogram_quantile_is_promql_interpolation_of_the_window() -> None:
    t = traffic()
    answer = values(prometheus(t).answer(
        f"histogram_quantile(0.99, sum by (le) (rate(response_latency_ms_bucket{{{SELECTOR}}}[1m])))"))
    counts = t.canary.buckets[300] - t.canary.buckets[240]
    expected = Histogram(BOUNDS, tuple(float(c) for c in counts)).quantile(0.99)
    assert expected is not None and answer[()] == pytest.approx(expected)


def test_a_version_that_never_served_has_no_series_and_a_failure_series_appears_with_the_first_failure() -> None:
    t = traffic(weight=0)
    sim = prometheus(t)
    assert sim.answer(f"sum by (classification) (increase(response_total{{{SELECTOR}}}[1m]))") == []
    primary = SELECTOR.replace('"app"', '"app-primary"')
    classes = {labels["classification"] for labels, _ in parse_result(
        sim.answer(f"sum by (classification) (increase(response_total{{{primary}}}[1m]))"))}
    assert classes == ({"success", "failure"} if t.primary.failures[300] else {"success"})


def test_no_requests_in_the_window_is_a_nan_quantile_as_in_prometheus() -> None:
    t = Traffic(np.random.default_rng(1), rps=50.0, canary=BAD, primary=HEALTHY, horizon=200)
    t.set_weight(50)
    t.advance_to(60)
    t.set_weight(0)
    t.advance_to(200)
    [(_, value)] = parse_result(prometheus(t).answer(
        f"histogram_quantile(0.99, sum by (le) (rate(response_latency_ms_bucket{{{SELECTOR}}}[1m])))"))
    assert math.isnan(value)


@pytest.mark.parametrize("promql", [
    "up",
    f"sum(increase(response_total{{{SELECTOR}}}[1m]))",
    f"sum by (status_code) (increase(response_total{{{SELECTOR}}}[1m]))",
    f"sum by (classification) (increase(request_total{{{SELECTOR}}}[1m]))",
    f"sum by (classification) (increase(response_total{{{SELECTOR}, pod=\"x\"}}[1m]))",
    f"sum by (classification) (increase(response_total{{{SELECTOR.replace('bench', 'other')}}}[1m]))",
    f"sum by (classification) (increase(response_total{{{SELECTOR.replace('inbound', 'outbound')}}}[1m]))",
    f"sum by (classification) (increase(response_total{{{SELECTOR.replace('app', 'nobody')}}}[1m]))",
    f"sum by (classification) (increase(response_total{{{SELECTOR}}}[1s500ms]))",
    f"histogram_quantile(0.99, sum by (classification) (rate(response_total{{{SELECTOR}}}[1m])))",
    f"histogram_quantile(0.99, sum by (le) (rate(response_latency_ms_bucket{{{SELECTOR}}}[1m]))",
])
def test_anything_else_is_refused_rather_than_guessed(promql: str) -> None:
    with pytest.raises(UnknownQuery):
        prometheus(traffic()).answer(promql)


def test_parse_reads_windows_and_alternatives() -> None:
    query = parse('sum by (deployment, classification) (increase(response_total{namespace="ns", '
                  'direction="inbound", deployment=~"a|a-primary"}[1m30s]))', namespace="ns",
                  workloads=("a", "a-primary"))
    assert query.window_seconds == 90
    assert query.deployments == ("a", "a-primary")
    assert query.by == ("deployment", "classification")
