"""The ``traefik`` preset against the real Prometheus the cluster build installs.

A tiny exporter on loopback serves Traefik-shaped series (``traefik_service_requests_total`` and
``traefik_service_request_duration_seconds``, labelled ``service``, ``code``, ``method``,
``protocol`` as Traefik v3 does with ``addServicesLabels``, Traefik's default buckets in
seconds) for a canary reached through both of Traefik's Kubernetes providers, its primary, and
look-alike Services that must not be selected. As in ``test_compare_real_prometheus``, every
series starts at 0 on the same scrape, so ``increase()``'s extrapolation factor is the same for
all of them at one evaluation: the assertions are about fractions, shares and quantiles, which
no factor changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from canary.config import Mesh
from canary.domain.samples import Histogram as SampleHistogram
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE
from canary.metrics.base import CompareRequest
from canary.metrics.prometheus import PrometheusProvider
from canary.metrics.traefik_services import CRD_PROVIDER, service_label
from e2e.prometheus import Prometheus, find_binary

from .conftest import builtin_request, make_settings

pytestmark = pytest.mark.skipif(
    find_binary() is None, reason="no Prometheus binary (/usr/bin/prometheus); run e2e/cluster/build.sh to install it"
)

NAMESPACE = "test"
CANARY_SVC, PRIMARY_SVC = "web-canary", "web-primary"
# The canary through the Gateway API provider and, for part of its traffic, through the CRD provider.
CANARY_GATEWAY = service_label(NAMESPACE, CANARY_SVC, 9898)
CANARY_CRD = service_label(NAMESPACE, CANARY_SVC, 9898, CRD_PROVIDER)
PRIMARY_GATEWAY = service_label(NAMESPACE, PRIMARY_SVC, 9898)
DECOYS = (
    service_label(NAMESPACE, "web", 9898),  # the apex Service
    service_label(NAMESPACE, "web-canary-old", 9898),
    service_label("other", CANARY_SVC, 9898),
    f"{NAMESPACE}-{CANARY_SVC}-http-9898@file",
)
BUCKETS = (0.1, 0.3, 1.2, 5.0)  # Traefik's default, in seconds
WINDOW = timedelta(minutes=10)

# Latencies in seconds; each p99 lies inside the (1.2 s, 5 s] bucket, so it is interpolated, and
# two of the primary's are beyond the last finite bound (the +Inf bucket).
CANARY_LATENCIES = [0.002 + ((i * 37) % 3700) / 1000 for i in range(100)]
PRIMARY_LATENCIES = [0.001 + ((i * 13) % 1500) / 1000 for i in range(453)] + [8.0, 9.5]
CANARY_CODES = ["500" if i % 2 else "503" for i in range(10)] + ["404"] * 5 + ["200"] * 85
PRIMARY_CODES = ["502"] * 5 + ["200"] * 450
CODES = ("200", "404", "500", "502", "503")


class TraefikExporter:
    """Traefik's per-service counter and latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["service", "code", "method", "protocol"]
        self.requests = Counter("traefik_service_requests", "requests", labels, registry=self.registry)
        self.latency = Histogram("traefik_service_request_duration_seconds", "latency", labels, buckets=BUCKETS,
                                 registry=self.registry)
        server, thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.server: WSGIServer = server
        self.thread: threading.Thread = thread
        self.address = f"127.0.0.1:{server.server_port}"

    def create(self, service: str) -> None:
        """Export the service's series at 0, so that the first scrape sees them start."""
        for code in CODES:
            self.requests.labels(service, code, "GET", "http")
            self.latency.labels(service, code, "GET", "http")

    def serve(self, services: Sequence[str], latencies: Sequence[float], codes: Sequence[str]) -> None:
        """Request i goes to ``services[i % len(services)]``."""
        for i, (latency, code) in enumerate(zip(latencies, codes, strict=True)):
            labels = (services[i % len(services)], code, "GET", "http")
            self.requests.labels(*labels).inc()
            self.latency.labels(*labels).observe(latency)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """One Prometheus for the module (starting one takes seconds); the tests only read from it."""
    tmp_path = tmp_path_factory.mktemp("prometheus")
    exporter = TraefikExporter()
    services = (CANARY_GATEWAY, CANARY_CRD, PRIMARY_GATEWAY, *DECOYS)
    try:
        for service in services:
            exporter.create(service)
        with Prometheus.start(tmp_path, scrape_targets=[exporter.address]) as prom:
            # Every series has been scraped at 0 before any request is counted.
            prom.wait_for_series(f"count(traefik_service_requests_total == 0) == {len(services) * len(CODES)}",
                                 timeout=30)
            exporter.serve([CANARY_GATEWAY, CANARY_CRD], CANARY_LATENCIES, CANARY_CODES)
            for decoy in DECOYS:
                exporter.serve([decoy], [9.0] * 50, ["500"] * 50)
            exporter.serve([PRIMARY_GATEWAY], PRIMARY_LATENCIES, PRIMARY_CODES)  # last: once scraped, all are
            prom.wait_for_series(
                f'sum(traefik_service_request_duration_seconds_count{{service="{PRIMARY_GATEWAY}"}}) == '
                f"{len(PRIMARY_LATENCIES)}",
                timeout=30,
            )
            yield prom
    finally:
        exporter.close()


def histogram_quantile_ms(prom: Prometheus, q: float, services: Sequence[str], function: str = "increase") -> float:
    """Prometheus's own quantile over the listed services' buckets, in ms."""
    selector = f'service=~"{"|".join(services)}"'
    (series,) = prom.query(
        f"histogram_quantile({q}, sum by (le) ({function}(traefik_service_request_duration_seconds_bucket"
        f"{{{selector}}}[10m])))"
    )
    return float(series["value"][1]) * 1000


def provider(prom: Prometheus) -> PrometheusProvider:
    return PrometheusProvider(prom.url, make_settings(prom.url, mesh=Mesh.TRAEFIK))


def cumulative_fractions(latencies: Sequence[float]) -> list[float]:
    return [sum(1 for v in latencies if v <= bound) / len(latencies) for bound in (*BUCKETS, float("inf"))]


def fractions(histogram: SampleHistogram | None) -> list[float]:
    assert histogram is not None and histogram.total > 0
    return [count / histogram.total for count in histogram.counts]


async def compare(prom: Prometheus) -> tuple[float, float, float, SampleHistogram | None, SampleHistogram | None,
                                              float | None]:
    p = provider(prom)
    try:
        comparison = await p.compare(CompareRequest(
            namespace=NAMESPACE, target="web", primary="web-primary", window=WINDOW,
            services=(CANARY_SVC, PRIMARY_SVC),
        ))
    finally:
        p.close()
    canary, primary = comparison.canary, comparison.primary
    return (canary.failures / canary.requests, primary.failures / primary.requests, canary.requests,
            canary.latency, primary.latency, comparison.canary_share)


async def test_the_comparison_splits_the_arms_by_service(prometheus: Prometheus) -> None:
    canary_failed, primary_failed, _, canary_latency, primary_latency, share = await compare(prometheus)
    # 5xx fail, 404 does not; both of the canary's Traefik services count, no decoy does.
    assert canary_failed == pytest.approx(10 / len(CANARY_CODES))
    assert primary_failed == pytest.approx(5 / len(PRIMARY_CODES))
    assert share == pytest.approx(len(CANARY_LATENCIES) / (len(CANARY_LATENCIES) + len(PRIMARY_LATENCIES)))
    for latency, latencies in ((canary_latency, CANARY_LATENCIES), (primary_latency, PRIMARY_LATENCIES)):
        assert latency is not None
        assert latency.bounds == (100.0, 300.0, 1200.0, 5000.0, float("inf"))  # seconds read as ms
        assert fractions(latency) == pytest.approx(cumulative_fractions(latencies))


@pytest.mark.parametrize("q", [0.25, 0.5, 0.9, 0.99])
async def test_judge_quantiles_equal_histogram_quantile_in_ms(prometheus: Prometheus, q: float) -> None:
    _, _, _, canary_latency, primary_latency, _ = await compare(prometheus)
    for services, latency in (([CANARY_GATEWAY, CANARY_CRD], canary_latency), ([PRIMARY_GATEWAY], primary_latency)):
        assert latency is not None
        expected = histogram_quantile_ms(prometheus, q, services)
        assert latency.quantile(q) == pytest.approx(expected, rel=1e-9)
        if q == 0.99:  # interpolated, not a bucket's bound: the unit conversion shows
            assert 1200.0 < expected < 5000.0


async def test_request_duration_is_histogram_quantile_in_ms_with_its_sample_count(prometheus: Prometheus) -> None:
    p = provider(prometheus)
    try:
        request = replace(builtin_request(BUILTIN_DURATION, namespace=NAMESPACE, target="web", window=WINDOW),
                          canary_service=CANARY_SVC)
        measurement = await p.measure(request)
    finally:
        p.close()
    expected = histogram_quantile_ms(prometheus, 0.99, [CANARY_GATEWAY, CANARY_CRD], "rate")
    assert measurement.value == pytest.approx(expected, rel=1e-9)
    # The canary's own requests, through both providers, extrapolated outwards by increase().
    assert measurement.samples is not None
    assert len(CANARY_LATENCIES) <= measurement.samples < 2.2 * len(CANARY_LATENCIES)


async def test_request_success_rate_counts_5xx_of_the_canary_services_only(prometheus: Prometheus) -> None:
    p = provider(prometheus)
    try:
        request = replace(builtin_request(BUILTIN_SUCCESS_RATE, namespace=NAMESPACE, target="web", window=WINDOW),
                          canary_service=CANARY_SVC)
        measurement = await p.measure(request)
    finally:
        p.close()
    assert measurement.value == pytest.approx(90.0)
    assert measurement.samples is not None
    assert len(CANARY_CODES) <= measurement.samples < 2.2 * len(CANARY_CODES)
