"""The judge's canary-versus-primary comparison through each provider and the engine's choice."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from canary.config import Mesh
from canary.domain.samples import ArmSample, Histogram
from canary.domain.spec import ProviderType
from canary.errors import MetricError, ProviderUnavailable
from canary.metrics.base import CompareRequest
from canary.metrics.engine import MetricsEngine
from canary.metrics.prometheus import PrometheusProvider
from canary.metrics.smi import SmiMetricsProvider

from .conftest import FakeServer, Received, Reply, http_fetch, make_settings, prom_error, traffic_metrics, vector

SMI_PREFIX = "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/"


def request(**overrides: Any) -> CompareRequest:
    values: dict[str, Any] = {
        "namespace": "shop",
        "target": "podinfo",
        "primary": "podinfo-primary",
        "window": timedelta(seconds=45),
    }
    values.update(overrides)
    return CompareRequest(**values)


def linkerd_route(request: Received) -> Reply:
    """Answers the outcome query and the bucket query by what each groups by."""
    if request.query.startswith("sum by (deployment, classification)"):
        return Reply(body=vector(
            ({"deployment": "podinfo", "classification": "success"}, "18"),
            ({"deployment": "podinfo", "classification": "failure"}, "2"),
            ({"deployment": "podinfo-primary", "classification": "success"}, "180"),
        ))  # fmt: skip
    if request.query.startswith("sum by (deployment, le)"):
        return Reply(body=vector(
            ({"deployment": "podinfo", "le": "+Inf"}, "20"), ({"deployment": "podinfo", "le": "50"}, "15"),
            ({"deployment": "podinfo-primary", "le": "50"}, "170"), ({"deployment": "podinfo-primary", "le": "+Inf"}, "180"),
        ))  # fmt: skip
    return Reply(400, prom_error("bad_data", f"unexpected query {request.query}"))


async def test_prometheus_compares_both_versions_in_two_queries(server: FakeServer) -> None:
    server.route = linkerd_route
    comparison = await PrometheusProvider(server.url, make_settings(server.url)).compare(request())
    assert comparison.canary == ArmSample(20.0, 2.0, Histogram((50.0, math.inf), (15.0, 20.0)))
    assert comparison.primary == ArmSample(180.0, 0.0, Histogram((50.0, math.inf), (170.0, 180.0)))
    selector = 'namespace="shop", deployment=~"podinfo|podinfo-primary", direction="inbound"'
    expected = [
        f"sum by (deployment, classification) (increase(response_total{{{selector}}}[45s]))",
        f"sum by (deployment, le) (increase(response_latency_ms_bucket{{{selector}}}[45s]))",
    ]
    assert sorted(server.queries) == sorted(expected)
    assert comparison.source == "\n".join(expected)


async def test_prometheus_without_latency_asks_once(server: FakeServer) -> None:
    server.route = linkerd_route
    comparison = await PrometheusProvider(server.url, make_settings(server.url)).compare(request(latency=False))
    assert comparison.canary == ArmSample(20.0, 2.0, None)
    assert len(server.queries) == 1


async def test_the_requests_mesh_wins_over_the_controllers(server: FakeServer) -> None:
    server.respond(Reply(body=vector()))
    provider = PrometheusProvider(server.url, make_settings(server.url, mesh=Mesh.LINKERD))
    await provider.compare(request(mesh=Mesh.ISTIO, latency=False))
    assert server.queries[0].startswith("sum by (destination_workload, response_code) (increase(istio_requests_total{")


async def test_prometheus_refusal_is_a_metric_error(server: FakeServer) -> None:
    server.respond(Reply(400, prom_error("bad_data", "parse error")))
    with pytest.raises(MetricError, match="parse error") as caught:
        await PrometheusProvider(server.url, make_settings(server.url)).compare(request())
    assert not isinstance(caught.value, ProviderUnavailable)


async def test_prometheus_outage_is_provider_unavailable(closed_port_url: str) -> None:
    with pytest.raises(ProviderUnavailable, match="did not answer after 3 attempts"):
        await PrometheusProvider(closed_port_url, make_settings(closed_port_url)).compare(request())


# --- SMI Traffic Metrics ------------------------------------------------------------------------


def counts(name: str, success: str, failure: str) -> dict[str, Any]:
    return traffic_metrics("shop", name, [
        {"name": "p99_response_latency", "unit": "ms", "value": "120"},
        {"name": "success_count", "value": success},
        {"name": "failure_count", "value": failure},
    ])  # fmt: skip


def smi_route(request: Received) -> Reply:
    name = request.path.removeprefix(SMI_PREFIX)
    if name == "podinfo":
        return Reply(body=counts("podinfo", "45", "5"))
    if name == "podinfo-primary":
        return Reply(body=counts("podinfo-primary", "449500m", "500m"))
    return Reply(404, {"kind": "Status", "code": 404})


async def test_smi_reads_both_traffic_metrics_objects_and_has_no_latency(server: FakeServer) -> None:
    server.route = smi_route
    comparison = await SmiMetricsProvider(http_fetch(server.url), make_settings()).compare(request())
    assert comparison.canary == ArmSample(50.0, 5.0, None)
    assert comparison.primary.requests == pytest.approx(450.0)
    assert comparison.primary.failures == pytest.approx(0.5)
    assert comparison.primary.latency is None
    assert sorted(r.path for r in server.received) == [SMI_PREFIX + "podinfo", SMI_PREFIX + "podinfo-primary"]
    assert all(r.params == {"t": "45s"} for r in server.received)
    assert comparison.source == (
        f"{SMI_PREFIX}podinfo?t=45s (success_count, failure_count)\n"
        f"{SMI_PREFIX}podinfo-primary?t=45s (success_count, failure_count)"
    )


async def test_smi_without_counts_or_with_negative_ones_is_no_data(server: FakeServer) -> None:
    def route(request: Received) -> Reply:
        if request.path.endswith("-primary"):
            return Reply(body=traffic_metrics("shop", "podinfo-primary", []))
        return Reply(body=counts("podinfo", "-3", "1"))

    server.route = route
    comparison = await SmiMetricsProvider(http_fetch(server.url), make_settings()).compare(request())
    assert comparison.canary == comparison.primary == ArmSample(0.0, 0.0, None)


async def test_smi_missing_primary_is_a_metric_error(server: FakeServer) -> None:
    server.route = smi_route
    with pytest.raises(MetricError, match="no Traffic Metrics for deployment shop/other-primary"):
        await SmiMetricsProvider(http_fetch(server.url), make_settings()).compare(request(primary="other-primary"))


# --- the engine's choice ------------------------------------------------------------------------


async def test_engine_asks_the_default_prometheus(server: FakeServer) -> None:
    server.route = linkerd_route
    engine = MetricsEngine(make_settings(server.url))
    comparison = await engine.compare(request())
    assert comparison.canary.requests == 20.0
    assert len(server.queries) == 2
    engine.close()


async def test_engine_asks_the_canarys_metrics_server(start_server: Callable[[], FakeServer]) -> None:
    default, own = start_server(), start_server()
    own.route = linkerd_route
    engine = MetricsEngine(make_settings(default.url))
    comparison = await engine.compare(request(metrics_server=own.url))
    assert comparison.primary.requests == 180.0
    assert default.received == [] and len(own.queries) == 2
    engine.close()


async def test_engine_uses_smi_when_it_is_the_source(start_server: Callable[[], FakeServer]) -> None:
    prometheus, smi = start_server(), start_server()
    smi.route = smi_route
    engine = MetricsEngine(make_settings(prometheus.url, source=ProviderType.SMI), smi_fetch=http_fetch(smi.url))
    assert isinstance(engine.comparison_provider_for(request()), SmiMetricsProvider)
    comparison = await engine.compare(request())
    assert comparison.canary == ArmSample(50.0, 5.0, None)
    assert prometheus.received == [] and len(smi.received) == 2


async def test_engine_metrics_server_wins_over_smi(server: FakeServer) -> None:
    engine = MetricsEngine(make_settings(source=ProviderType.SMI), smi_fetch=http_fetch("http://unused.invalid"))
    provider = engine.comparison_provider_for(request(metrics_server=server.url))
    assert isinstance(provider, PrometheusProvider) and provider.address == server.url
    engine.close()


async def test_engine_without_smi_fetch_is_a_metric_error() -> None:
    engine = MetricsEngine(make_settings(source=ProviderType.SMI))
    with pytest.raises(MetricError, match="SMI Traffic Metrics API is not available"):
        await engine.compare(request())


async def test_engine_turns_unsafe_names_into_metric_errors(server: FakeServer) -> None:
    engine = MetricsEngine(make_settings(server.url))
    with pytest.raises(MetricError, match="refusing to put it into a query"):
        await engine.compare(request(primary='x"}'))
    assert server.received == []
    engine.close()
