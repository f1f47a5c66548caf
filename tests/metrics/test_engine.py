from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from canary.config import Mesh, MetricsSettings
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE, ProviderType
from canary.errors import MetricError, ProviderUnavailable, TemplateError
from canary.metrics.base import Measurement
from canary.metrics.engine import MetricsEngine
from canary.metrics.prometheus import PrometheusProvider
from canary.metrics.smi import SmiMetricsProvider

from .conftest import (
    FakeServer,
    Received,
    Reply,
    builtin_request,
    http_fetch,
    make_settings,
    template_request,
    traffic_metrics,
    vector,
)

SMI_BODY = traffic_metrics(
    "shop",
    "podinfo",
    [
        {"name": "p99_response_latency", "unit": "ms", "value": "120"},
        {"name": "success_count", "value": "98"},
        {"name": "failure_count", "value": "2"},
    ],
)


async def test_requests_run_concurrently_and_keep_their_order(server: FakeServer, settings: MetricsSettings) -> None:
    def route(request: Received) -> Reply:
        return Reply(body=vector(({}, request.query.removeprefix("q"))), delay=0.4)

    server.route = route
    engine = MetricsEngine(settings)
    results = await engine.measure_all([template_request(f"q{i}") for i in range(5)])
    assert [r.value for r in results if isinstance(r, Measurement)] == [0.0, 1.0, 2.0, 3.0, 4.0]
    # Concurrency as the server saw it, not as a stopwatch on a possibly busy machine sees it.
    assert server.max_in_flight >= 3


async def test_builtins_use_the_default_prometheus(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({"classification": "success"}, "10"))))
    (result,) = await MetricsEngine(settings).measure_all([builtin_request(BUILTIN_SUCCESS_RATE)])
    assert isinstance(result, Measurement) and result.value == 100.0
    assert server.queries[0].startswith("sum by (classification) (increase(response_total{")


async def test_builtins_use_smi_when_it_is_the_default_source(start_server: Callable[[], FakeServer]) -> None:
    prometheus, smi = start_server(), start_server()
    smi.respond(Reply(body=SMI_BODY))
    settings = make_settings(prometheus.url, source=ProviderType.SMI)
    engine = MetricsEngine(settings, smi_fetch=http_fetch(smi.url))
    rate, latency = await engine.measure_all(
        [builtin_request(BUILTIN_SUCCESS_RATE), builtin_request(BUILTIN_DURATION)]
    )
    assert isinstance(rate, Measurement) and rate.value == pytest.approx(98.0) and rate.samples == 100
    assert isinstance(latency, Measurement) and latency.value == 120.0
    assert prometheus.received == []
    assert len(smi.received) == 2


async def test_templates_choose_their_own_provider(start_server: Callable[[], FakeServer]) -> None:
    default, other, smi = start_server(), start_server(), start_server()
    default.respond(Reply(body=vector(({}, "1"))))
    other.respond(Reply(body=vector(({}, "2"))))
    smi.respond(Reply(body=SMI_BODY))
    engine = MetricsEngine(make_settings(default.url), smi_fetch=http_fetch(smi.url))
    results = await engine.measure_all(
        [
            template_request("sum(default)"),
            template_request("sum(other)", address=other.url),
            template_request("p99_response_latency", provider=ProviderType.SMI),
        ]
    )
    assert [r.value for r in results if isinstance(r, Measurement)] == [1.0, 2.0, 120.0]
    assert default.queries == ["sum(default)"]
    assert other.queries == ["sum(other)"]
    assert [r.path for r in smi.received] == ["/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/podinfo"]


def test_one_prometheus_provider_per_address(settings: MetricsSettings) -> None:
    engine = MetricsEngine(settings)
    a1 = engine.provider_for(template_request("x", address="http://a:9090"))
    a2 = engine.provider_for(template_request("y", address="http://a:9090/"))
    b = engine.provider_for(template_request("z", address="http://b:9090"))
    default = engine.provider_for(builtin_request(BUILTIN_DURATION))
    assert a1 is a2
    assert a1 is not b
    assert isinstance(default, PrometheusProvider) and default.address == settings.prometheus_address
    assert engine.provider_for(template_request("w")) is default
    engine.close()


def test_smi_template_uses_the_smi_provider(settings: MetricsSettings) -> None:
    engine = MetricsEngine(settings, smi_fetch=http_fetch("http://unused"))
    assert isinstance(engine.provider_for(template_request("success_count", provider=ProviderType.SMI)), SmiMetricsProvider)


async def test_token_secret_is_sent_as_bearer(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({}, "1"))))
    engine = MetricsEngine(settings)
    request = template_request("sum(x)", address=server.url, secret="prom-auth")
    (result,) = await engine.measure_all([request], credentials={"prom-auth": {"token": "abc"}})
    assert isinstance(result, Measurement)
    assert server.received[0].headers["authorization"] == "Bearer abc"


async def test_rotated_secret_replaces_the_provider(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({}, "1"))))
    engine = MetricsEngine(settings)
    request = template_request("sum(x)", address=server.url, secret="prom-auth")
    await engine.measure_all([request], credentials={"prom-auth": {"username": "u", "password": "old"}})
    await engine.measure_all([request], credentials={"prom-auth": {"username": "u", "password": "new"}})
    first, second = (r.headers["authorization"] for r in server.received)
    assert first != second


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ({}, "not resolved"),
        ({"prom-auth": {}}, "neither token nor username"),
        ({"prom-auth": {"token": "t", "username": "u"}}, "both token and username"),
    ],
)
async def test_bad_secrets_are_reported_per_request(
    server: FakeServer, settings: MetricsSettings, credentials: dict[str, dict[str, str]], message: str
) -> None:
    engine = MetricsEngine(settings)
    (result,) = await engine.measure_all(
        [template_request("sum(x)", address=server.url, secret="prom-auth")], credentials=credentials
    )
    assert isinstance(result, MetricError) and message in str(result)
    assert server.received == []


async def test_failures_are_returned_in_place(start_server: Callable[[], FakeServer]) -> None:
    good, down = start_server(), start_server()
    good.respond(Reply(body=vector(({}, "5"))))
    down.respond(Reply(503, {"status": "error", "errorType": "unavailable", "error": "down"}))
    engine = MetricsEngine(make_settings(good.url))
    results = await engine.measure_all(
        [
            template_request("sum(x)"),
            template_request("sum(x)", address=down.url),
            template_request("{{ nope }}"),
            template_request("success_count", provider=ProviderType.SMI),
        ]
    )
    assert isinstance(results[0], Measurement) and results[0].value == 5.0
    assert isinstance(results[1], ProviderUnavailable)
    assert isinstance(results[2], TemplateError)
    assert isinstance(results[3], MetricError) and "SMI" in str(results[3])
    assert len(down.received) == 3


async def test_empty_tick_measures_nothing(settings: MetricsSettings) -> None:
    assert await MetricsEngine(settings).measure_all([]) == []


async def test_a_canarys_metrics_server_answers_its_builtins(start_server: Callable[[], FakeServer]) -> None:
    default, own = start_server(), start_server()
    own.respond(Reply(body=vector(({"classification": "success"}, "10"))))
    # Flagger's spec.metricsServer wins even where SMI is the controller's default source.
    engine = MetricsEngine(make_settings(default.url, source=ProviderType.SMI))
    request = replace(builtin_request(BUILTIN_SUCCESS_RATE), metrics_server=own.url)
    (result,) = await engine.measure_all([request])
    assert isinstance(result, Measurement) and result.value == 100.0
    assert default.received == [] and len(own.received) == 1


@pytest.mark.parametrize(("override", "expected"), [
    (None, "response_total"), (Mesh.OSM, "osm_request_total"), (Mesh.ISTIO, "istio_requests_total"),
])
async def test_a_provider_naming_a_mesh_picks_the_builtin_metric_names(
    server: FakeServer, override: Mesh | None, expected: str,
) -> None:
    server.respond(Reply(body=vector(({"classification": "success"}, "10"))))
    engine = MetricsEngine(make_settings(server.url, mesh=Mesh.LINKERD))
    await engine.measure_all([replace(builtin_request(BUILTIN_SUCCESS_RATE), mesh=override)])
    assert expected in server.queries[0]
