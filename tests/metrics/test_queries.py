from __future__ import annotations

from datetime import timedelta

import pytest

from canary.config import Mesh
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE
from canary.errors import MetricError, TemplateError
from canary.metrics.queries import (
    DurationQuery,
    SuccessRateQuery,
    builtin_query,
    split_outcomes,
    success_rate,
)

LINKERD_SEL = 'namespace="shop", deployment="podinfo", direction="inbound"'
ISTIO_SEL = 'reporter="destination", destination_workload_namespace="shop", destination_workload="podinfo"'
OSM_SEL = 'destination_namespace="shop", destination_kind="Deployment", destination_name="podinfo"'


@pytest.mark.parametrize(
    ("mesh", "metric", "expected"),
    [
        pytest.param(
            Mesh.LINKERD, BUILTIN_SUCCESS_RATE,
            f"sum by (classification) (increase(response_total{{{LINKERD_SEL}}}[2m]))",
            id="linkerd-success",
        ),
        pytest.param(
            Mesh.LINKERD, BUILTIN_DURATION,
            f"sum by (le) (increase(response_latency_ms_bucket{{{LINKERD_SEL}}}[2m]))",
            id="linkerd-duration",
        ),
        pytest.param(
            Mesh.ISTIO, BUILTIN_SUCCESS_RATE,
            f"sum by (response_code) (increase(istio_requests_total{{{ISTIO_SEL}}}[2m]))",
            id="istio-success",
        ),
        pytest.param(
            Mesh.ISTIO, BUILTIN_DURATION,
            f"sum by (le) (increase(istio_request_duration_milliseconds_bucket{{{ISTIO_SEL}}}[2m]))",
            id="istio-duration",
        ),
        pytest.param(
            Mesh.OSM, BUILTIN_SUCCESS_RATE,
            f"sum by (response_code) (increase(osm_request_total{{{OSM_SEL}}}[2m]))",
            id="osm-success",
        ),
        pytest.param(
            Mesh.OSM, BUILTIN_DURATION,
            f"sum by (le) (increase(osm_request_duration_ms_bucket{{{OSM_SEL}}}[2m]))",
            id="osm-duration",
        ),
    ],
)
def test_builtin_queries_per_mesh(mesh: Mesh, metric: str, expected: str) -> None:
    query = builtin_query(metric, mesh, namespace="shop", target="podinfo", window=timedelta(minutes=2))
    assert query.promql == expected
    assert isinstance(query, SuccessRateQuery if metric == BUILTIN_SUCCESS_RATE else DurationQuery)


def test_window_is_formatted_as_a_prometheus_range() -> None:
    query = builtin_query(BUILTIN_DURATION, Mesh.LINKERD, namespace="a", target="b", window=timedelta(seconds=90))
    assert query.promql.endswith("[1m30s]))")


@pytest.mark.parametrize("mesh", list(Mesh))
@pytest.mark.parametrize(("namespace", "target"), [('shop"}', "podinfo"), ("shop", 'x"} or vector(1) or {a="')])
def test_unsafe_names_never_reach_builtin_queries(mesh: Mesh, namespace: str, target: str) -> None:
    with pytest.raises(TemplateError):
        builtin_query(BUILTIN_SUCCESS_RATE, mesh, namespace=namespace, target=target, window=timedelta(minutes=1),
                      canary_service="podinfo-canary")


def test_non_builtin_name_is_an_error() -> None:
    with pytest.raises(MetricError, match="templateRef"):
        builtin_query("error-rate", Mesh.LINKERD, namespace="a", target="b", window=timedelta(minutes=1))


@pytest.mark.parametrize(
    ("mesh", "outcome", "failed"),
    [
        (Mesh.LINKERD, "failure", True),
        (Mesh.LINKERD, "success", False),
        (Mesh.LINKERD, "", False),
        (Mesh.ISTIO, "503", True),
        (Mesh.ISTIO, "500", True),
        (Mesh.ISTIO, "404", False),
        (Mesh.ISTIO, "200", False),
        (Mesh.OSM, "502", True),
        (Mesh.OSM, "201", False),
    ],
)
def test_failure_rule_per_mesh(mesh: Mesh, outcome: str, failed: bool) -> None:
    query = builtin_query(BUILTIN_SUCCESS_RATE, mesh, namespace="a", target="b", window=timedelta(minutes=1))
    assert isinstance(query, SuccessRateQuery)
    assert query.is_failure(outcome) is failed


def test_split_outcomes_sums_codes() -> None:
    query = builtin_query(BUILTIN_SUCCESS_RATE, Mesh.ISTIO, namespace="a", target="b", window=timedelta(minutes=1))
    assert isinstance(query, SuccessRateQuery)
    assert split_outcomes(query, [("200", 90.0), ("404", 5.0), ("500", 3.0), ("503", 2.0)]) == (95.0, 5.0)


@pytest.mark.parametrize(
    ("success", "failure", "expected"),
    [(99.0, 1.0, 99.0), (0.0, 10.0, 0.0), (10.0, 0.0, 100.0), (0.0, 0.0, None), (1.5, 0.5, 75.0)],
)
def test_success_rate(success: float, failure: float, expected: float | None) -> None:
    assert success_rate(success, failure) == expected


@pytest.mark.parametrize(("mesh", "selector"), [
    pytest.param(Mesh.LINKERD, 'namespace="shop", daemonset="agent", direction="inbound"', id="linkerd"),
    pytest.param(Mesh.ISTIO, 'reporter="destination", destination_workload_namespace="shop", '
                 'destination_workload="agent"', id="istio"),
    pytest.param(Mesh.OSM, 'destination_namespace="shop", destination_kind="DaemonSet", destination_name="agent"',
                 id="osm"),
])
def test_a_daemonset_target_is_selected_by_its_own_kind(mesh: Mesh, selector: str) -> None:
    query = builtin_query(BUILTIN_SUCCESS_RATE, mesh, namespace="shop", target="agent", window=timedelta(minutes=1),
                          target_kind="DaemonSet")
    assert f"{{{selector}}}" in query.promql


def test_a_kind_without_builtin_metrics_is_an_error() -> None:
    with pytest.raises(MetricError, match="StatefulSet"):
        builtin_query(BUILTIN_SUCCESS_RATE, Mesh.LINKERD, namespace="a", target="b", window=timedelta(minutes=1),
                      target_kind="StatefulSet")
