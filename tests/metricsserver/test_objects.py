"""The bodies: quantities, TrafficMetrics as the controller's parser reads them, discovery, Status."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from canary.config import MetricsSettings
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE, MetricSpec, ThresholdRange
from canary.metrics.base import MeasureRequest
from canary.metrics.smi import SmiMetricsProvider, parse_quantity, parse_traffic_metrics
from canary.metricsserver import objects
from canary.metricsserver.objects import ObjectRef, format_quantity
from canary.metricsserver.queries import Direction
from canary.metricsserver.resources import Kind
from canary.metricsserver.traffic import Traffic

NOW = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (0.0, "0"), (0.0004, "0"), (Decimal("0.0005"), "0"), (Decimal("0.0015"), "2m"), (1, "1"), (0.5, "500m"),
    (73.492, "73492m"), (100, "100"), (1500, "1500"), (2000, "2k"), (1187.5, "1187500m"), (12.0, "12"),
    (1_000_000, "1M"), (2.5e9, "2500M"), (-3, "-3"), (Decimal("0.123456"), "123m"), (1e21, "1000E"),
])
def test_format_quantity(value: float | Decimal, text: str) -> None:
    assert format_quantity(value) == text


def test_quantities_round_trip_through_the_kubernetes_parser() -> None:
    rng = random.Random(4)
    for _ in range(2000):
        value = Decimal(rng.randrange(0, 10**rng.randrange(1, 15))) / 1000
        assert parse_quantity(format_quantity(value)) == value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_no_quantity_for_non_numbers(value: float) -> None:
    with pytest.raises(ValueError):
        format_quantity(value)


def test_traffic_metrics_shape() -> None:
    traffic = Traffic(success=1187.5, failure=12, latencies={"p99_response_latency": 73.492,
                                                             "p50_response_latency": 10.25})
    body = objects.traffic_metrics(ObjectRef.of(Kind.DEPLOYMENTS, "test", "podinfo"), traffic, timestamp=NOW,
                                   window=timedelta(minutes=1))
    assert body == {
        "apiVersion": "metrics.smi-spec.io/v1alpha1",
        "kind": "TrafficMetrics",
        "metadata": {"name": "podinfo", "namespace": "test", "creationTimestamp": "2025-01-01T12:00:00Z"},
        "resource": {"kind": "Deployment", "namespace": "test", "name": "podinfo"},
        "edge": {"direction": "from", "resource": None},
        "timestamp": "2025-01-01T12:00:00Z",
        "window": "1m",
        "metrics": [
            {"name": "p99_response_latency", "unit": "ms", "value": "73492m"},
            {"name": "p50_response_latency", "unit": "ms", "value": "10250m"},
            {"name": "success_count", "value": "1187500m"},
            {"name": "failure_count", "value": "12"},
        ],
    }


def test_edge_and_namespace_references() -> None:
    body = objects.traffic_metrics(ObjectRef.of(Kind.NAMESPACES, None, "shop"), None, timestamp=NOW,
                                   window=timedelta(seconds=30), direction=Direction.TO,
                                   peer=ObjectRef.of(Kind.NAMESPACES, None, "test"))
    assert body["resource"] == {"kind": "Namespace", "name": "shop"}
    assert body["metadata"] == {"name": "shop", "creationTimestamp": "2025-01-01T12:00:00Z"}
    assert body["edge"] == {"direction": "to", "resource": {"kind": "Namespace", "name": "test"}}


@pytest.mark.parametrize("traffic", [None, Traffic(), Traffic(latencies={"p99_response_latency": 5.0})])
def test_no_traffic_has_zero_counts_and_no_latency(traffic: Traffic | None) -> None:
    assert objects.metrics(traffic) == [{"name": "success_count", "value": "0"},
                                        {"name": "failure_count", "value": "0"}]


def _request(metric: str) -> MeasureRequest:
    return MeasureRequest(metric=MetricSpec(name=metric, threshold_range=ThresholdRange(min=1)), namespace="test",
                          name="podinfo", target="podinfo", service="podinfo", window=timedelta(minutes=1))


@pytest.mark.parametrize(("traffic", "rate", "p99", "samples"), [
    (Traffic(success=990, failure=10, latencies={"p99_response_latency": 212.5}), 99.0, 212.5, 1000.0),
    (Traffic(success=0.5, failure=0, latencies={"p99_response_latency": 0.001}), 100.0, 0.001, 0.5),
    (None, None, None, 0.0),
])
async def test_the_controller_reads_what_the_server_writes(
    traffic: Traffic | None, rate: float | None, p99: float | None, samples: float
) -> None:
    body = objects.traffic_metrics(ObjectRef.of(Kind.DEPLOYMENTS, "test", "podinfo"), traffic, timestamp=NOW,
                                   window=timedelta(minutes=1))
    paths: list[str] = []

    async def fetch(path: str) -> Mapping[str, Any]:
        paths.append(path)
        return body

    provider = SmiMetricsProvider(fetch, MetricsSettings())
    success_rate = await provider.measure(_request(BUILTIN_SUCCESS_RATE))
    duration = await provider.measure(_request(BUILTIN_DURATION))
    assert success_rate.value == (pytest.approx(rate) if rate is not None else None)
    assert success_rate.samples == pytest.approx(samples)
    assert duration.value == (pytest.approx(p99) if p99 is not None else None)
    assert paths[0] == "/apis/metrics.smi-spec.io/v1alpha1/namespaces/test/deployments/podinfo?t=1m"
    assert parse_traffic_metrics(body).total == pytest.approx(samples)


def test_list_shape() -> None:
    item = objects.traffic_metrics(ObjectRef.of(Kind.PODS, "test", "p"), None, timestamp=NOW,
                                   window=timedelta(seconds=30))
    assert objects.traffic_metrics_list(ObjectRef("Pod", "test"), [item]) == {
        "apiVersion": "metrics.smi-spec.io/v1alpha1", "kind": "TrafficMetricsList", "metadata": {},
        "resource": {"kind": "Pod", "namespace": "test"}, "items": [item],
    }


def test_not_found_is_the_api_servers_shape() -> None:
    assert objects.not_found(Kind.DEPLOYMENTS, "test", "gone") == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.metrics.smi-spec.io "gone" not found: there is no Deployment "gone" in '
                   "namespace 'test' in the cluster",
        "reason": "NotFound", "code": 404,
        "details": {"name": "gone", "group": "metrics.smi-spec.io", "kind": "deployments"},
    }


def test_discovery_lists_every_kind_and_its_edges() -> None:
    names = [r["name"] for r in objects.api_resource_list()["resources"]]
    assert names == ["deployments", "deployments/edges", "pods", "pods/edges", "daemonsets", "daemonsets/edges",
                     "statefulsets", "statefulsets/edges", "namespaces", "namespaces/edges"]
    assert objects.api_group_list()["groups"] == [{
        "name": "metrics.smi-spec.io",
        "versions": [{"groupVersion": "metrics.smi-spec.io/v1alpha1", "version": "v1alpha1"}],
        "preferredVersion": {"groupVersion": "metrics.smi-spec.io/v1alpha1", "version": "v1alpha1"},
    }]
