from __future__ import annotations

import base64
import math
from datetime import timedelta

import pytest
import requests

from canary.config import Mesh, MetricsSettings
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE
from canary.errors import MetricError, ProviderUnavailable, TemplateError
from canary.metrics.prometheus import PrometheusProvider, parse_result

from .conftest import (
    FakeServer,
    Reply,
    builtin_request,
    make_settings,
    prom_error,
    scalar,
    template_request,
    vector,
)

LINKERD_SR = (
    'sum by (classification) (increase(response_total{namespace="shop", deployment="podinfo", '
    'direction="inbound"}[1m]))'
)


async def test_linkerd_success_rate_from_classification_counts(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({"classification": "success"}, "297"), ({"classification": "failure"}, "3"))))
    measurement = await PrometheusProvider(server.url, settings).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert measurement.value == pytest.approx(99.0)
    assert measurement.samples == pytest.approx(300.0)
    assert measurement.source == LINKERD_SR
    assert server.queries == [LINKERD_SR]
    assert server.received[0].path == "/api/v1/query"


async def test_istio_success_rate_counts_5xx_as_failures(server: FakeServer) -> None:
    settings = make_settings(server.url, mesh=Mesh.ISTIO)
    server.respond(
        Reply(
            body=vector(
                ({"response_code": "200"}, "180.5"),
                ({"response_code": "404"}, "9.5"),
                ({"response_code": "503"}, "10"),
            )
        )
    )
    measurement = await PrometheusProvider(server.url, settings).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert measurement.value == pytest.approx(95.0)
    assert measurement.samples == pytest.approx(200.0)
    assert server.queries == [
        'sum by (response_code) (increase(istio_requests_total{reporter="destination", '
        'destination_workload_namespace="shop", destination_workload="podinfo"}[1m]))'
    ]


async def test_success_rate_without_requests_is_no_data(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector()))
    measurement = await PrometheusProvider(server.url, settings).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert measurement.value is None
    assert measurement.samples == 0


async def test_success_rate_with_only_zero_counts_is_no_data(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({"classification": "success"}, "0"), ({"classification": "failure"}, "0"))))
    measurement = await PrometheusProvider(server.url, settings).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert (measurement.value, measurement.samples) == (None, 0)


async def test_success_rate_with_nan_count_is_no_data(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({"classification": "success"}, "NaN"))))
    measurement = await PrometheusProvider(server.url, settings).measure(builtin_request(BUILTIN_SUCCESS_RATE))
    assert measurement.value is None


def buckets(*pairs: tuple[str, str]) -> dict[str, object]:
    """A ``sum by (le)`` answer, listed out of order as Prometheus may."""
    return vector(*(({"le": le}, count) for le, count in reversed(pairs)))


async def test_duration_p99_is_interpolated_from_the_buckets(server: FakeServer, settings: MetricsSettings) -> None:
    # 1000 requests: 900 at most 100 ms, 985 at most 300 ms, 995 at most 500 ms. Rank 990 lies
    # halfway through the (300, 500] bucket: 400 ms, as histogram_quantile interpolates.
    server.respond(Reply(body=buckets(("100", "900"), ("300", "985"), ("500", "995"), ("+Inf", "1000"))))
    request = builtin_request(BUILTIN_DURATION, window=timedelta(seconds=30))
    measurement = await PrometheusProvider(server.url, settings).measure(request)
    expected = (
        "sum by (le) (increase(response_latency_ms_bucket{namespace=\"shop\", "
        'deployment="podinfo", direction="inbound"}[30s]))'
    )
    assert measurement.value == pytest.approx(400.0)
    assert measurement.source == expected
    assert measurement.samples == 1000.0
    assert server.queries == [expected]


async def test_duration_rank_in_the_inf_bucket_is_the_highest_finite_bound(
    server: FakeServer, settings: MetricsSettings
) -> None:
    server.respond(Reply(body=buckets(("100", "50"), ("500", "90"), ("+Inf", "100"))))
    measurement = await PrometheusProvider(server.url, settings).measure(builtin_request(BUILTIN_DURATION))
    assert measurement.value == 500.0
    assert measurement.samples == 100.0


@pytest.mark.parametrize(
    ("answer", "samples"),
    [
        pytest.param(vector(), None, id="empty"),
        pytest.param(buckets(("100", "0"), ("+Inf", "0")), 0.0, id="no-requests"),
        pytest.param(buckets(("100", "5"), ("+Inf", "NaN")), None, id="nan-bucket"),
        pytest.param(buckets(("100", "5"), ("+Inf", "+Inf")), None, id="inf-bucket"),
    ],
)
async def test_duration_without_requests_is_no_data(
    server: FakeServer, settings: MetricsSettings, answer: dict[str, object], samples: float | None
) -> None:
    server.respond(Reply(body=answer))
    measurement = await PrometheusProvider(server.url, settings).measure(builtin_request(BUILTIN_DURATION))
    assert measurement.value is None
    assert measurement.samples == samples


async def test_duration_without_an_inf_bucket_has_no_sample_count(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=buckets(("100", "50"), ("500", "90"))))
    measurement = await PrometheusProvider(server.url, settings).measure(builtin_request(BUILTIN_DURATION))
    assert measurement.value is None and measurement.samples is None


@pytest.mark.parametrize("le", ["fast", "NaN", ""])
async def test_duration_with_a_bad_bucket_bound_is_an_error(
    server: FakeServer, settings: MetricsSettings, le: str
) -> None:
    server.respond(Reply(body=buckets((le, "5"), ("+Inf", "9"))))
    with pytest.raises(MetricError, match="le="):
        await PrometheusProvider(server.url, settings).measure(builtin_request(BUILTIN_DURATION))


async def test_custom_query_is_rendered_and_sent_exactly(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({}, "0.25"))))
    request = template_request(
        'sum(rate(errors_total{ns="{{ namespace }}", app="{{ target }}", route="{{ variables.route }}"}[{{ interval }}]))',
        variables={"route": "/checkout"},
        window=timedelta(minutes=5),
    )
    measurement = await PrometheusProvider(server.url, settings).measure(request)
    rendered = 'sum(rate(errors_total{ns="shop", app="podinfo", route="/checkout"}[5m]))'
    assert measurement.value == 0.25
    assert measurement.source == rendered
    assert server.queries == [rendered]


async def test_custom_query_may_return_a_scalar(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=scalar("42")))
    measurement = await PrometheusProvider(server.url, settings).measure(template_request("scalar(vector(42))"))
    assert measurement.value == 42.0


async def test_custom_query_with_empty_vector_is_no_data(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector()))
    measurement = await PrometheusProvider(server.url, settings).measure(template_request("sum(x)"))
    assert measurement.value is None


async def test_custom_query_returning_many_series_must_aggregate(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({"pod": "a"}, "1"), ({"pod": "b"}, "2"))))
    with pytest.raises(MetricError, match=r"2 series.*sum\(\)"):
        await PrometheusProvider(server.url, settings).measure(template_request("rate(x[1m])"))


async def test_injection_in_a_variable_never_reaches_prometheus(server: FakeServer, settings: MetricsSettings) -> None:
    request = template_request('sum(x{a="{{ variables.a }}"})', variables={"a": 'x"} or vector(1) or {a="'})
    with pytest.raises(TemplateError):
        await PrometheusProvider(server.url, settings).measure(request)
    assert server.received == []


async def test_503_then_success_is_retried(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(503, prom_error("unavailable", "starting up")), Reply(body=vector(({}, "7"))))
    measurement = await PrometheusProvider(server.url, settings).measure(template_request("sum(x)"))
    assert measurement.value == 7.0
    assert server.queries == ["sum(x)", "sum(x)"]


async def test_always_5xx_is_unavailable_after_bounded_attempts(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(503, prom_error("unavailable", "overloaded")))
    with pytest.raises(ProviderUnavailable, match=r"after 3 attempts.*503.*overloaded") as err:
        await PrometheusProvider(server.url, settings).measure(template_request("sum(x)"))
    assert len(server.received) == 3
    assert err.value.__cause__ is not None


async def test_connection_refused_is_unavailable(closed_port_url: str) -> None:
    settings = make_settings(closed_port_url, retry_attempts=2)
    with pytest.raises(ProviderUnavailable, match="after 2 attempts") as err:
        await PrometheusProvider(closed_port_url, settings).measure(template_request("sum(x)"))
    cause = err.value.__cause__
    assert cause is not None and isinstance(cause.__cause__, requests.ConnectionError)


async def test_timeout_is_retried_then_unavailable(server: FakeServer) -> None:
    settings = make_settings(server.url, retry_attempts=2, query_timeout=timedelta(milliseconds=200))
    server.respond(Reply(body=vector(({}, "1")), delay=1.0))
    with pytest.raises(ProviderUnavailable):
        await PrometheusProvider(server.url, settings).measure(template_request("sum(x)"))
    assert len(server.received) == 2


async def test_bad_query_is_an_error_without_retries(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(400, prom_error("bad_data", 'parse error: unexpected "}"')))
    with pytest.raises(MetricError, match="bad_data: parse error") as err:
        await PrometheusProvider(server.url, settings).measure(template_request("sum(x}"))
    assert not isinstance(err.value, ProviderUnavailable)
    assert len(server.received) == 1


async def test_range_vector_is_refused(server: FakeServer, settings: MetricsSettings) -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "1"]]}]}}
    server.respond(Reply(body=body))
    with pytest.raises(MetricError, match="range vector"):
        await PrometheusProvider(server.url, settings).measure(template_request("x[5m]"))


async def test_non_json_answer_is_an_error(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body="<html>proxy</html>"))
    with pytest.raises(MetricError, match="JSON"):
        await PrometheusProvider(server.url, settings).measure(template_request("sum(x)"))
    assert len(server.received) == 1


async def test_bearer_token_and_headers_are_sent(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({}, "1"))))
    provider = PrometheusProvider(server.url + "/", settings, bearer_token="s3cret", headers={"X-Scope-OrgID": "t1"})
    await provider.measure(template_request("sum(x)"))
    headers = server.received[0].headers
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["x-scope-orgid"] == "t1"
    assert server.received[0].path == "/api/v1/query"


async def test_basic_auth_is_sent(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({}, "1"))))
    await PrometheusProvider(server.url, settings, basic_auth=("ann", "pw")).measure(template_request("sum(x)"))
    assert server.received[0].headers["authorization"] == "Basic " + base64.b64encode(b"ann:pw").decode()


def test_token_and_basic_auth_together_are_refused() -> None:
    with pytest.raises(MetricError, match="not both"):
        PrometheusProvider("http://p:9090", make_settings(), bearer_token="t", basic_auth=("a", "b"))


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ([], []),
        ([1.5, "2"], [({}, 2.0)]),
        ([{"metric": {"a": "b"}, "value": [1, "3"]}], [({"a": "b"}, 3.0)]),
    ],
)
def test_parse_result_shapes(result: object, expected: object) -> None:
    assert parse_result(result) == expected


def test_parse_result_reads_nan() -> None:
    ((_, value),) = parse_result([{"metric": {}, "value": [1, "NaN"]}])
    assert math.isnan(value)


@pytest.mark.parametrize("result", [{"a": 1}, [1, "text"], ["x"], [{"metric": {}, "value": "1"}]])
def test_parse_result_refuses_other_shapes(result: object) -> None:
    with pytest.raises(MetricError):
        parse_result(result)
