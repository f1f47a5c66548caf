from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE, ProviderType
from canary.errors import MetricError, ProviderUnavailable, TemplateError
from canary.metrics.smi import FetchError, SmiMetricsProvider, metrics_path, parse_traffic_metrics

from .conftest import (
    FakeServer,
    Reply,
    builtin_request,
    http_fetch,
    make_settings,
    template_request,
    traffic_metrics,
)

PATH = "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/podinfo"


def metrics(success: str = "100", failure: str = "0", p99: str | None = "50", unit: str | None = "ms") -> Reply:
    items: list[dict[str, str]] = [
        {"name": "p50_response_latency", "unit": unit or "", "value": "10"},
        {"name": "p90_response_latency", "unit": unit or "", "value": "30"},
    ]
    if p99 is not None:
        items.append({"name": "p99_response_latency", "unit": unit or "", "value": p99})
    items += [{"name": "success_count", "value": success}, {"name": "failure_count", "value": failure}]
    return Reply(body=traffic_metrics("shop", "podinfo", items))


def provider(server: FakeServer, **overrides: Any) -> SmiMetricsProvider:
    return SmiMetricsProvider(http_fetch(server.url), make_settings(**overrides))


async def test_success_rate_from_quantity_counts(server: FakeServer) -> None:
    server.respond(metrics(success="73492m", failure="1508m"))
    measurement = await provider(server).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert measurement.value == pytest.approx(73.492 / 75 * 100)
    assert measurement.samples == pytest.approx(75.0)
    assert [r.path for r in server.received] == [PATH]
    assert server.received[0].params == {"t": "1m"}
    assert measurement.source == f"{PATH}?t=1m (success_count, failure_count)"


async def test_window_goes_into_t(server: FakeServer) -> None:
    server.respond(metrics())
    await provider(server).measure(builtin_request(BUILTIN_SUCCESS_RATE, window=timedelta(seconds=90)))
    assert server.received[0].params == {"t": "1m30s"}


@pytest.mark.parametrize(
    ("value", "unit", "expected_ms"),
    [("250", "ms", 250.0), ("250m", "ms", 0.25), ("1500m", "seconds", 1500.0), ("2", "s", 2000.0),
     ("1500", "us", 1.5)],
)
async def test_latency_units_are_converted_to_ms(server: FakeServer, value: str, unit: str, expected_ms: float) -> None:
    server.respond(metrics(p99=value, unit=unit))
    measurement = await provider(server).measure(builtin_request(BUILTIN_DURATION))
    assert measurement.value == pytest.approx(expected_ms)
    assert measurement.samples == 100


async def test_zero_counts_are_no_data(server: FakeServer) -> None:
    server.respond(metrics(success="0", failure="0m"))
    p = provider(server)
    rate = await p.measure(builtin_request(BUILTIN_SUCCESS_RATE))
    latency = await p.measure(builtin_request(BUILTIN_DURATION))
    assert (rate.value, rate.samples) == (None, 0)
    assert (latency.value, latency.samples) == (None, 0)


async def test_missing_latency_is_no_data(server: FakeServer) -> None:
    server.respond(metrics(p99=None))
    measurement = await provider(server).measure(builtin_request(BUILTIN_DURATION))
    assert measurement.value is None


async def test_latency_without_unit_is_an_error(server: FakeServer) -> None:
    server.respond(metrics(unit=None))
    with pytest.raises(MetricError, match="no unit"):
        await provider(server).measure(builtin_request(BUILTIN_DURATION))


async def test_unknown_unit_is_an_error(server: FakeServer) -> None:
    server.respond(metrics(unit="fortnights"))
    with pytest.raises(MetricError, match="fortnights"):
        await provider(server).measure(builtin_request(BUILTIN_DURATION))


async def test_404_names_the_deployment_without_retrying(server: FakeServer) -> None:
    server.respond(Reply(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}))
    with pytest.raises(MetricError, match="deployment shop/podinfo") as err:
        await provider(server).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert not isinstance(err.value, ProviderUnavailable)
    assert len(server.received) == 1


async def test_503_then_success_is_retried(server: FakeServer) -> None:
    server.respond(Reply(503, {"kind": "Status", "code": 503}), metrics(success="99", failure="1"))
    measurement = await provider(server).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert measurement.value == pytest.approx(99.0)
    assert len(server.received) == 2


async def test_always_down_is_unavailable(server: FakeServer) -> None:
    server.respond(Reply(503, {"kind": "Status", "code": 503}))
    with pytest.raises(ProviderUnavailable, match="after 3 attempts") as err:
        await provider(server).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert len(server.received) == 3
    assert isinstance(err.value.__cause__, Exception)


async def test_unreachable_api_server_is_unavailable(closed_port_url: str) -> None:
    p = SmiMetricsProvider(http_fetch(closed_port_url), make_settings(retry_attempts=2))
    with pytest.raises(ProviderUnavailable, match="after 2 attempts"):
        await p.measure(builtin_request(BUILTIN_SUCCESS_RATE))


async def test_slow_fetch_times_out_and_retries(server: FakeServer) -> None:
    server.respond(Reply(body=metrics().body, delay=1.0))
    p = provider(server, retry_attempts=2, query_timeout=timedelta(milliseconds=200))
    with pytest.raises(ProviderUnavailable):
        await p.measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert len(server.received) == 2


async def test_forbidden_is_an_error_without_retries(server: FakeServer) -> None:
    server.respond(Reply(403, {"kind": "Status", "code": 403, "message": "forbidden"}))
    with pytest.raises(MetricError, match="403"):
        await provider(server).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [("p90_response_latency", 30.0), ("p50_response_latency", 10.0), ("success_count", 100.0), ("failure_count", 0.0)],
)
async def test_template_names_a_traffic_metric(server: FakeServer, query: str, expected: float) -> None:
    server.respond(metrics())
    measurement = await provider(server).measure(template_request(f" {query}\n", provider=ProviderType.SMI))
    assert measurement.value == expected
    assert measurement.samples == 100
    assert measurement.source.endswith(f"({query})")


async def test_template_with_unknown_metric_is_refused(server: FakeServer) -> None:
    with pytest.raises(TemplateError, match="p95_response_latency"):
        await provider(server).measure(template_request("p95_response_latency", provider=ProviderType.SMI))
    assert server.received == []


async def test_unsafe_names_never_reach_the_path(server: FakeServer) -> None:
    with pytest.raises(TemplateError):
        await provider(server).measure(builtin_request(BUILTIN_SUCCESS_RATE, target="../../secrets/x"))
    assert server.received == []


async def test_fetch_may_raise_oserror_as_unreachable() -> None:
    calls: list[str] = []

    async def fetch(path: str) -> dict[str, object]:
        calls.append(path)
        raise ConnectionRefusedError("nope")

    with pytest.raises(ProviderUnavailable):
        await SmiMetricsProvider(fetch, make_settings(retry_attempts=2)).measure(builtin_request(BUILTIN_DURATION))
    assert len(calls) == 2


def test_fetch_error_message() -> None:
    assert str(FetchError(None, "refused")) == "refused"
    assert str(FetchError(404, "gone")) == "HTTP 404: gone"


def test_parse_refuses_objects_without_metrics() -> None:
    with pytest.raises(MetricError, match="TrafficMetricsList"):
        parse_traffic_metrics({"kind": "TrafficMetricsList", "items": []})


def test_parse_refuses_bad_quantities() -> None:
    with pytest.raises(MetricError, match="not a quantity"):
        parse_traffic_metrics({"metrics": [{"name": "success_count", "value": "lots"}]})


def test_a_daemonset_target_is_read_under_daemonsets() -> None:
    assert metrics_path("shop", "agent", "1m", "DaemonSet") == \
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/daemonsets/agent?t=1m"
    assert metrics_path("shop", "podinfo", "1m") == f"{PATH}?t=1m"
    with pytest.raises(MetricError, match="StatefulSet"):
        metrics_path("shop", "db", "1m", "StatefulSet")
