"""The ``traefik`` preset: the builtin checks' and the judge's PromQL, the arms read back from
Traefik's per-Service series, and its seconds histogram read in milliseconds."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest

from canary.config import Mesh
from canary.domain.samples import ArmSample, Histogram
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE
from canary.errors import MetricError, TemplateError
from canary.metrics.base import CompareRequest
from canary.metrics.comparison_queries import ComparisonQuery, comparison_query, read_comparison
from canary.metrics.prometheus import PrometheusProvider
from canary.metrics.queries import DurationQuery, Series, SuccessRateQuery, builtin_query

from .conftest import FakeServer, Received, Reply, builtin_request, make_settings, vector

CANARY_SVC = "shop-podinfo-canary-http-[0-9]+@kubernetesgateway|shop-podinfo-canary-[0-9]+@kubernetescrd"
PRIMARY_SVC = "shop-podinfo-primary-http-[0-9]+@kubernetesgateway|shop-podinfo-primary-[0-9]+@kubernetescrd"
# Two ports and both providers per arm: every one of them must land in its own arm.
CANARY_LABELS = ("shop-podinfo-canary-http-9898@kubernetesgateway", "shop-podinfo-canary-9898@kubernetescrd",
                 "shop-podinfo-canary-http-8080@kubernetesgateway")
PRIMARY_LABELS = ("shop-podinfo-primary-http-9898@kubernetesgateway", "shop-podinfo-primary-9898@kubernetescrd")


def builtin(metric: str, canary_service: str | None = "podinfo-canary") -> SuccessRateQuery | DurationQuery:
    return builtin_query(metric, Mesh.TRAEFIK, namespace="shop", target="podinfo", window=timedelta(minutes=2),
                         canary_service=canary_service)


def test_success_rate_counts_requests_per_code_of_the_canary_service() -> None:
    query = builtin(BUILTIN_SUCCESS_RATE)
    assert query.promql == (
        f'sum by (code) (increase(traefik_service_requests_total{{service=~"{CANARY_SVC}"}}[2m]))'
    )
    assert isinstance(query, SuccessRateQuery)
    assert [query.is_failure(code) for code in ("500", "502", "503", "200", "404", "302")] == [
        True, True, True, False, False, False,
    ]


def test_duration_reads_the_seconds_histogram_of_the_canary_service() -> None:
    query = builtin(BUILTIN_DURATION)
    assert query.promql == (
        f'sum by (le) (increase(traefik_service_request_duration_seconds_bucket{{service=~"{CANARY_SVC}"}}[2m]))'
    )
    assert isinstance(query, DurationQuery)
    assert query.le_unit_ms == 1000.0


def test_without_the_canary_service_there_is_nothing_to_select() -> None:
    with pytest.raises(MetricError, match="no Service was given"):
        builtin(BUILTIN_SUCCESS_RATE, canary_service=None)


@pytest.mark.parametrize("service", ['podinfo-canary"} or vector(1) or {a="', "podinfo.canary", "a|.*", ""])
def test_unsafe_service_names_never_reach_the_query(service: str) -> None:
    with pytest.raises(TemplateError, match="refusing to put it into a query"):
        builtin(BUILTIN_SUCCESS_RATE, canary_service=service)


async def test_success_rate_and_its_sample_count_from_traefik_codes(server: FakeServer) -> None:
    server.respond(Reply(body=vector(({"code": "200"}, "180.5"), ({"code": "404"}, "9.5"), ({"code": "502"}, "10"))))
    request = replace(builtin_request(BUILTIN_SUCCESS_RATE), canary_service="podinfo-canary")
    measurement = await PrometheusProvider(server.url, make_settings(server.url, mesh=Mesh.TRAEFIK)).measure(request)
    assert measurement.value == pytest.approx(95.0)
    assert measurement.samples == pytest.approx(200.0)
    assert server.queries == [
        f'sum by (code) (increase(traefik_service_requests_total{{service=~"{CANARY_SVC}"}}[1m]))'
    ]


async def test_p99_is_in_milliseconds_from_buckets_in_seconds(server: FakeServer) -> None:
    # 1000 requests: 900 within 0.1 s, 985 within 0.3 s, 995 within 1.2 s. Rank 990 lies 5/10 of
    # the way through (0.3 s, 1.2 s]: 0.75 s, which is 750 ms.
    server.respond(Reply(body=vector(({"le": "+Inf"}, "1000"), ({"le": "1.2"}, "995"), ({"le": "0.1"}, "900"),
                                     ({"le": "0.3"}, "985"))))
    request = replace(builtin_request(BUILTIN_DURATION), canary_service="podinfo-canary")
    measurement = await PrometheusProvider(server.url, make_settings(server.url, mesh=Mesh.TRAEFIK)).measure(request)
    assert measurement.value == pytest.approx(750.0)
    assert measurement.samples == 1000.0


# --- the judge --------------------------------------------------------------------------------


def compare(latency: bool = True, services: tuple[str, str] | None = ("podinfo-canary", "podinfo-primary"),
            namespace: str = "shop") -> ComparisonQuery:
    return comparison_query(Mesh.TRAEFIK, namespace=namespace, canary="podinfo", primary="podinfo-primary",
                            window=timedelta(minutes=1), latency=latency, services=services)


def test_one_query_per_metric_for_both_services() -> None:
    q = compare()
    selector = f'service=~"{CANARY_SVC}|{PRIMARY_SVC}"'
    assert q.outcomes == f"sum by (service, code) (increase(traefik_service_requests_total{{{selector}}}[1m]))"
    assert q.latency == (
        f"sum by (service, le) (increase(traefik_service_request_duration_seconds_bucket{{{selector}}}[1m]))"
    )
    assert (q.version_label, q.canary, q.primary) == ("service", "podinfo-canary", "podinfo-primary")


@pytest.mark.parametrize("label", CANARY_LABELS)
def test_every_canary_label_is_the_canary_arm(label: str) -> None:
    assert compare().arm_of(label) == "podinfo-canary"


@pytest.mark.parametrize("label", PRIMARY_LABELS)
def test_every_primary_label_is_the_primary_arm(label: str) -> None:
    assert compare().arm_of(label) == "podinfo-primary"


@pytest.mark.parametrize("label", [
    "shop-podinfo-http-9898@kubernetesgateway",  # the apex Service
    "shop-podinfo-canary-old-http-9898@kubernetesgateway",
    "other-podinfo-canary-http-9898@kubernetesgateway",
    "podinfo-canary",
])
def test_other_labels_are_neither_arm(label: str) -> None:
    assert compare().arm_of(label) is None


def outcome(service: str, code: str, value: float) -> Series:
    return {"service": service, "code": code}, value


def bucket(service: str, le: str, value: float) -> Series:
    return {"service": service, "le": le}, value


def test_series_of_each_arm_are_summed_and_5xx_fail() -> None:
    c1, c2, c3 = CANARY_LABELS
    p1, p2 = PRIMARY_LABELS
    outcomes = [
        outcome(c1, "200", 60.0), outcome(c2, "200", 20.0), outcome(c3, "404", 10.0), outcome(c1, "500", 6.0),
        outcome(c2, "503", 4.0), outcome(p1, "200", 850.0), outcome(p2, "200", 49.0), outcome(p2, "502", 1.0),
    ]  # fmt: skip
    buckets = [
        bucket(c1, "0.1", 50.0), bucket(c1, "+Inf", 70.0), bucket(c2, "0.1", 20.0), bucket(c2, "+Inf", 24.0),
        bucket(c3, "0.1", 3.0), bucket(c3, "+Inf", 6.0),
        bucket(p1, "0.1", 800.0), bucket(p1, "+Inf", 850.0), bucket(p2, "+Inf", 50.0), bucket(p2, "0.1", 45.0),
    ]  # fmt: skip
    comparison = read_comparison(compare(), outcomes, buckets)
    assert comparison.canary == ArmSample(100.0, 10.0, Histogram((100.0, math.inf), (73.0, 100.0)))
    assert comparison.primary == ArmSample(900.0, 1.0, Histogram((100.0, math.inf), (845.0, 900.0)))


def test_a_series_of_another_service_is_an_error() -> None:
    with pytest.raises(MetricError, match="comparison query returned a series of service="):
        read_comparison(compare(latency=False), [outcome("shop-podinfo-http-9898@kubernetesgateway", "200", 1.0)],
                        None)


def test_without_services_there_is_nothing_to_compare() -> None:
    with pytest.raises(MetricError, match="no Services were given"):
        compare(services=None)


def test_services_named_alike_are_refused() -> None:
    with pytest.raises(MetricError, match="nothing to compare"):
        compare(services=("podinfo-canary", "podinfo-canary"))


@pytest.mark.parametrize(("services", "namespace"), [
    (('podinfo-canary"}', "podinfo-primary"), "shop"),
    (("podinfo-canary", "x|.*"), "shop"),
    (("podinfo-canary", "podinfo-primary"), 'shop", a="b'),
])
def test_unsafe_names_are_refused(services: tuple[str, str], namespace: str) -> None:
    with pytest.raises(TemplateError, match="refusing to put it into a query"):
        compare(services=services, namespace=namespace)


async def test_the_provider_sends_both_queries_and_reads_the_arms(server: FakeServer) -> None:
    c1, p1 = CANARY_LABELS[0], PRIMARY_LABELS[0]

    def route(received: Received) -> Reply:
        if "requests_total" in received.query:
            return Reply(body=vector(({"service": c1, "code": "200"}, "10"), ({"service": p1, "code": "200"}, "30")))
        return Reply(body=vector(({"service": c1, "le": "+Inf"}, "10"), ({"service": c1, "le": "0.3"}, "8"),
                                 ({"service": p1, "le": "+Inf"}, "30"), ({"service": p1, "le": "0.3"}, "30")))

    server.route = route
    provider = PrometheusProvider(server.url, make_settings(server.url, mesh=Mesh.TRAEFIK))
    comparison = await provider.compare(CompareRequest(
        namespace="shop", target="podinfo", primary="podinfo-primary", window=timedelta(minutes=1),
        services=("podinfo-canary", "podinfo-primary"),
    ))
    assert sorted(server.queries) == sorted(compare().source.split("\n"))
    assert comparison.canary == ArmSample(10.0, 0.0, Histogram((300.0, math.inf), (8.0, 10.0)))
    assert comparison.primary == ArmSample(30.0, 0.0, Histogram((300.0, math.inf), (30.0, 30.0)))
