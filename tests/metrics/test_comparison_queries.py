"""The canary-versus-primary PromQL per mesh and kind, and the reading of its answers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta

import pytest

from canary.config import Mesh
from canary.domain.samples import ArmSample, Histogram
from canary.errors import MetricError, TemplateError
from canary.metrics.comparison_queries import ComparisonQuery, comparison_query, promql_string, read_comparison
from canary.metrics.queries import Series, arm_pattern

LINKERD_SEL = 'namespace="test", deployment=~"podinfo|podinfo-primary", direction="inbound"'
ISTIO_SEL = (
    'reporter="destination", destination_workload_namespace="test", '
    'destination_workload=~"podinfo|podinfo-primary"'
)
OSM_SEL = 'destination_namespace="test", destination_kind="Deployment", destination_name=~"podinfo|podinfo-primary"'


def query(mesh: Mesh = Mesh.LINKERD, *, canary: str = "podinfo", primary: str = "podinfo-primary",
          kind: str = "Deployment", latency: bool = True, namespace: str = "test") -> ComparisonQuery:
    return comparison_query(mesh, namespace=namespace, canary=canary, primary=primary,
                            window=timedelta(minutes=1), target_kind=kind, latency=latency)


@pytest.mark.parametrize(
    ("mesh", "outcomes", "latency"),
    [
        pytest.param(
            Mesh.LINKERD,
            f"sum by (deployment, classification) (increase(response_total{{{LINKERD_SEL}}}[1m]))",
            f"sum by (deployment, le) (increase(response_latency_ms_bucket{{{LINKERD_SEL}}}[1m]))",
            id="linkerd",
        ),
        pytest.param(
            Mesh.ISTIO,
            f"sum by (destination_workload, response_code) (increase(istio_requests_total{{{ISTIO_SEL}}}[1m]))",
            "sum by (destination_workload, le) "
            f"(increase(istio_request_duration_milliseconds_bucket{{{ISTIO_SEL}}}[1m]))",
            id="istio",
        ),
        pytest.param(
            Mesh.OSM,
            f"sum by (destination_name, response_code) (increase(osm_request_total{{{OSM_SEL}}}[1m]))",
            f"sum by (destination_name, le) (increase(osm_request_duration_ms_bucket{{{OSM_SEL}}}[1m]))",
            id="osm",
        ),
    ],
)
def test_one_query_per_metric_for_both_versions(mesh: Mesh, outcomes: str, latency: str) -> None:
    q = query(mesh)
    assert (q.outcomes, q.latency) == (outcomes, latency)
    assert q.source == f"{outcomes}\n{latency}"


@pytest.mark.parametrize(
    ("mesh", "selector", "version_label"),
    [
        (Mesh.LINKERD, 'namespace="test", daemonset=~"agent|agent-primary", direction="inbound"', "daemonset"),
        (Mesh.ISTIO, 'reporter="destination", destination_workload_namespace="test", '
                     'destination_workload=~"agent|agent-primary"', "destination_workload"),
        (Mesh.OSM, 'destination_namespace="test", destination_kind="DaemonSet", '
                   'destination_name=~"agent|agent-primary"', "destination_name"),
    ],
)
def test_daemonsets_are_selected_by_their_kind(mesh: Mesh, selector: str, version_label: str) -> None:
    q = query(mesh, canary="agent", primary="agent-primary", kind="DaemonSet")
    assert f"{{{selector}}}" in q.outcomes
    assert q.outcomes.startswith(f"sum by ({version_label}, ")
    assert q.version_label == version_label


def test_without_latency_there_is_one_query() -> None:
    q = query(latency=False)
    assert q.latency is None
    assert q.source == q.outcomes


def test_dots_in_names_match_only_a_dot() -> None:
    q = query(canary="web.v2", primary="web.v2-primary")
    # PromQL unescapes \\ to one backslash: the regular expression reads web\.v2|web\.v2-primary.
    assert 'deployment=~"web\\\\.v2|web\\\\.v2-primary"' in q.outcomes
    assert promql_string(arm_pattern(Mesh.LINKERD, namespace="test", name="a.b.c")) == "a\\\\.b\\\\.c"


@pytest.mark.parametrize(
    ("canary", "primary", "namespace"),
    [
        ('podinfo"}', "podinfo-primary", "test"),
        ("podinfo", 'x|.*', "test"),
        ("podinfo", "podinfo-primary", 'test", a="b'),
        ("Podinfo", "podinfo-primary", "test"),
        ("podinfo", "", "test"),
    ],
)
def test_unsafe_names_are_refused(canary: str, primary: str, namespace: str) -> None:
    with pytest.raises(TemplateError, match="refusing to put it into a query"):
        query(canary=canary, primary=primary, namespace=namespace)


def test_a_primary_named_like_the_canary_is_refused() -> None:
    with pytest.raises(MetricError, match="nothing to compare"):
        query(canary="podinfo", primary="podinfo")


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(MetricError, match="no builtin metrics for a 'StatefulSet' target"):
        query(kind="StatefulSet")


# --- reading the answers ----------------------------------------------------------------------


def linkerd(version: str, classification: str, value: float) -> Series:
    return {"deployment": version, "classification": classification}, value


def bucket(version: str, le: str, value: float, label: str = "deployment") -> Series:
    return {label: version, "le": le}, value


def test_linkerd_counts_and_histograms_per_version() -> None:
    q = query()
    outcomes = [
        linkerd("podinfo", "success", 95.5), linkerd("podinfo", "failure", 4.5),
        linkerd("podinfo-primary", "success", 899.0), linkerd("podinfo-primary", "failure", 1.0),
    ]  # fmt: skip
    buckets = [  # out of order, as Prometheus may list them
        bucket("podinfo-primary", "+Inf", 900), bucket("podinfo", "+Inf", 100), bucket("podinfo", "10", 60),
        bucket("podinfo-primary", "10", 850), bucket("podinfo", "100.5", 97), bucket("podinfo-primary", "100.5", 899),
    ]  # fmt: skip
    comparison = read_comparison(q, outcomes, buckets)
    assert comparison.canary == ArmSample(100.0, 4.5, Histogram((10.0, 100.5, math.inf), (60.0, 97.0, 100.0)))
    assert comparison.primary == ArmSample(900.0, 1.0, Histogram((10.0, 100.5, math.inf), (850.0, 899.0, 900.0)))
    assert comparison.canary_share == pytest.approx(0.1)
    assert comparison.source == q.source


@pytest.mark.parametrize("mesh", [Mesh.ISTIO, Mesh.OSM])
def test_istio_and_osm_count_5xx_as_failures(mesh: Mesh) -> None:
    q = query(mesh, latency=False)
    label = q.version_label
    answer: list[Series] = [({label: "podinfo-primary", "response_code": "200"}, 50.0)]
    answer += [
        ({label: "podinfo", "response_code": code}, count)
        for code, count in (("200", 80.0), ("404", 10.0), ("500", 6.0), ("503", 4.0))
    ]
    comparison = read_comparison(q, answer, None)
    assert comparison.canary == ArmSample(100.0, 10.0, None)
    assert comparison.primary == ArmSample(50.0, 0.0, None)


def test_a_version_without_series_has_no_requests() -> None:
    comparison = read_comparison(query(), [linkerd("podinfo", "success", 3)], [bucket("podinfo", "+Inf", 3)])
    assert comparison.canary == ArmSample(3.0, 0.0, Histogram((math.inf,), (3.0,)))
    assert comparison.primary == ArmSample(0.0, 0.0, Histogram((), ()))
    assert comparison.primary.latency is not None and comparison.primary.latency.total == 0.0


def test_empty_answers_are_no_data_for_both() -> None:
    comparison = read_comparison(query(), [], [])
    assert comparison.canary == comparison.primary == ArmSample(0.0, 0.0, Histogram((), ()))
    assert comparison.canary_share is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
@pytest.mark.parametrize("where", ["outcomes", "buckets"])
def test_a_version_with_a_non_finite_or_negative_value_is_no_data(bad: float, where: str) -> None:
    outcomes = [linkerd("podinfo", "success", 10), linkerd("podinfo-primary", "success", 20)]
    buckets = [bucket("podinfo", "+Inf", 10), bucket("podinfo-primary", "+Inf", 20)]
    if where == "outcomes":
        outcomes.append(linkerd("podinfo", "failure", bad))
    else:
        buckets.append(bucket("podinfo", "5", bad))
    comparison = read_comparison(query(), outcomes, buckets)
    assert comparison.canary == ArmSample(0.0, 0.0, Histogram((), ()))
    assert comparison.primary == ArmSample(20.0, 0.0, Histogram((math.inf,), (20.0,)))


def test_buckets_without_inf_are_an_empty_histogram() -> None:
    outcomes = [linkerd("podinfo", "success", 10), linkerd("podinfo-primary", "success", 20)]
    buckets = [bucket("podinfo", "5", 4), bucket("podinfo", "50", 9), bucket("podinfo-primary", "+Inf", 20)]
    comparison = read_comparison(query(), outcomes, buckets)
    assert comparison.canary == ArmSample(10.0, 0.0, Histogram((), ()))
    assert comparison.primary == ArmSample(20.0, 0.0, Histogram((math.inf,), (20.0,)))


@pytest.mark.parametrize(
    ("window", "text"), [(timedelta(seconds=1), "[1s]"), (timedelta(minutes=3, seconds=5), "[3m5s]")],
)
def test_the_window_is_the_one_asked_for(window: timedelta, text: str) -> None:
    q = comparison_query(Mesh.LINKERD, namespace="test", canary="podinfo", primary="podinfo-primary", window=window)
    assert q.outcomes.endswith(f"{text}))")
    assert q.latency is not None and q.latency.endswith(f"{text}))")


@pytest.mark.parametrize(
    "labels",
    [
        {"deployment": "podinfo-old", "classification": "success"},
        {"classification": "success"},
        {"deployment": "podinfo"},
    ],
)
def test_a_series_the_query_cannot_have_returned_is_an_error(labels: Mapping[str, str]) -> None:
    with pytest.raises(MetricError, match="comparison query returned a series"):
        read_comparison(query(latency=False), [(labels, 1.0)], None)


def test_a_bucket_without_a_numeric_bound_is_an_error() -> None:
    with pytest.raises(MetricError, match="le='fast'"):
        read_comparison(query(), [], [bucket("podinfo", "fast", 1.0)])
