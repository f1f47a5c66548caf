"""The comparison and request-duration queries against the real Prometheus the cluster build installs.

A tiny exporter on loopback serves Linkerd-shaped counters and histograms for a canary, its
primary and look-alike workloads that must not be selected. Prometheus's ``increase()``
extrapolates to the window's edges, so absolute counts depend on when the query runs; every
series starts at 0 on the same scrape, which makes the extrapolation factor the same for all of
them at any one evaluation. The assertions are therefore about what no factor changes: failure
fractions, the canary's share, the shape of each histogram, and the quantiles.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from canary.config import Mesh
from canary.domain.samples import Histogram as SampleHistogram
from canary.domain.spec import BUILTIN_DURATION
from canary.metrics.base import CompareRequest
from canary.metrics.prometheus import PrometheusProvider
from e2e.prometheus import Prometheus, find_binary

from .conftest import builtin_request, make_settings

pytestmark = pytest.mark.skipif(
    find_binary() is None, reason="no Prometheus binary (/usr/bin/prometheus); run e2e/cluster/build.sh to install it"
)

NAMESPACE = "test"
# A dotted name: an unescaped '.' in the regular expression would also select "webxv2".
CANARY, PRIMARY = "web.v2", "web.v2-primary"
DECOYS = ("webxv2", "web.v2-old", "web.v2-primaryx")
BOUNDS = (5.0, 10.0, 50.0, 100.0, 500.0, 1000.0)
WINDOW = timedelta(minutes=10)

# Latencies in ms, some beyond the last finite bound (the +Inf bucket).
CANARY_LATENCIES = [1.0 + (i * 37) % 1400 for i in range(100)]
PRIMARY_LATENCIES = [0.5 + (i * 13) % 700 for i in range(455)]
CANARY_FAILURES, PRIMARY_FAILURES = 10, 5


class LinkerdExporter:
    """``response_total`` and ``response_latency_ms`` as Linkerd's proxies label them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["namespace", "deployment", "direction"]
        self.responses = Counter("response", "responses", [*labels, "classification"], registry=self.registry)
        self.latency = Histogram("response_latency_ms", "latency", labels, buckets=BOUNDS, registry=self.registry)
        server, thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.server: WSGIServer = server
        self.thread: threading.Thread = thread
        self.address = f"127.0.0.1:{server.server_port}"

    def create(self, deployment: str, direction: str = "inbound") -> None:
        """Export the workload's series at 0, so that the first scrape sees them start."""
        for classification in ("success", "failure"):
            self.responses.labels(NAMESPACE, deployment, direction, classification)
        self.latency.labels(NAMESPACE, deployment, direction)

    def serve(self, deployment: str, latencies: Sequence[float], failures: int, direction: str = "inbound") -> None:
        for i, latency in enumerate(latencies):
            outcome = "failure" if i < failures else "success"
            self.responses.labels(NAMESPACE, deployment, direction, outcome).inc()
            self.latency.labels(NAMESPACE, deployment, direction).observe(latency)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, LinkerdExporter]]:
    """One Prometheus for the module (starting one takes seconds); the tests only read from it."""
    tmp_path = tmp_path_factory.mktemp("prometheus")
    exporter = LinkerdExporter()
    try:
        for name in (CANARY, PRIMARY, *DECOYS):
            exporter.create(name)
        exporter.create(CANARY, direction="outbound")
        with Prometheus.start(tmp_path, scrape_targets=[exporter.address]) as prom:
            # Every series has been scraped at 0 before any request is counted.
            prom.wait_for_series(f'count(response_total{{namespace="{NAMESPACE}"}} == 0) == 12', timeout=30)
            exporter.serve(CANARY, CANARY_LATENCIES, CANARY_FAILURES)
            exporter.serve(PRIMARY, PRIMARY_LATENCIES, PRIMARY_FAILURES)
            for decoy in DECOYS:
                exporter.serve(decoy, [2000.0] * 50, failures=50)
            exporter.serve(CANARY, [2000.0] * 50, failures=50, direction="outbound")
            prom.wait_for_series(
                f'sum(response_latency_ms_count{{deployment="{PRIMARY}", direction="inbound"}}) == '
                f"{len(PRIMARY_LATENCIES)}",
                timeout=30,
            )
            yield prom, exporter
    finally:
        exporter.close()


def cumulative_fractions(latencies: Sequence[float]) -> list[float]:
    return [sum(1 for v in latencies if v <= bound) / len(latencies) for bound in (*BOUNDS, float("inf"))]


def histogram_quantile(prom: Prometheus, q: float, deployment: str, function: str = "increase") -> float:
    selector = f'namespace="{NAMESPACE}", deployment="{deployment}", direction="inbound"'
    (series,) = prom.query(f"histogram_quantile({q}, sum by (le) ({function}(response_latency_ms_bucket{{{selector}}}[10m])))")
    return float(series["value"][1])


def fractions(histogram: SampleHistogram | None) -> list[float]:
    assert histogram is not None and histogram.total > 0
    return [count / histogram.total for count in histogram.counts]


async def test_one_query_per_metric_returns_both_versions(prometheus: tuple[Prometheus, LinkerdExporter]) -> None:
    prom, _ = prometheus
    provider = PrometheusProvider(prom.url, make_settings(prom.url, mesh=Mesh.LINKERD))
    try:
        comparison = await provider.compare(
            CompareRequest(namespace=NAMESPACE, target=CANARY, primary=PRIMARY, window=WINDOW)
        )
    finally:
        provider.close()
    canary, primary = comparison.canary, comparison.primary
    assert canary.failures / canary.requests == pytest.approx(CANARY_FAILURES / len(CANARY_LATENCIES))
    assert primary.failures / primary.requests == pytest.approx(PRIMARY_FAILURES / len(PRIMARY_LATENCIES))
    total = len(CANARY_LATENCIES) + len(PRIMARY_LATENCIES)
    assert comparison.canary_share == pytest.approx(len(CANARY_LATENCIES) / total)

    for arm, latencies in ((canary, CANARY_LATENCIES), (primary, PRIMARY_LATENCIES)):
        assert arm.latency is not None
        assert arm.latency.bounds == (*BOUNDS, float("inf"))
        assert fractions(arm.latency) == pytest.approx(cumulative_fractions(latencies))


@pytest.mark.parametrize("q", [0.01, 0.25, 0.5, 0.9, 0.99, 0.999])
async def test_python_quantile_equals_histogram_quantile(prometheus: tuple[Prometheus, LinkerdExporter], q: float) -> None:
    prom, _ = prometheus
    provider = PrometheusProvider(prom.url, make_settings(prom.url))
    try:
        comparison = await provider.compare(
            CompareRequest(namespace=NAMESPACE, target=CANARY, primary=PRIMARY, window=WINDOW)
        )
    finally:
        provider.close()
    for deployment, arm in ((CANARY, comparison.canary), (PRIMARY, comparison.primary)):
        assert arm.latency is not None
        # Quantiles do not change with the extrapolation factor, so two evaluations agree.
        assert arm.latency.quantile(q) == pytest.approx(histogram_quantile(prom, q, deployment), rel=1e-9)


async def test_request_duration_is_histogram_quantile_with_its_sample_count(
    prometheus: tuple[Prometheus, LinkerdExporter],
) -> None:
    prom, _ = prometheus
    provider = PrometheusProvider(prom.url, make_settings(prom.url))
    try:
        measurement = await provider.measure(builtin_request(BUILTIN_DURATION, namespace=NAMESPACE, target=CANARY,
                                                             window=WINDOW))
    finally:
        provider.close()
    # The query request-duration used to send, rate() and all: the same p99.
    assert measurement.value == pytest.approx(histogram_quantile(prom, 0.99, CANARY, "rate"), rel=1e-9)
    # increase() only extrapolates outwards, and by less than the time it covers: the canary's 100
    # requests, never the primary's 455 or a decoy's.
    assert measurement.samples is not None
    assert len(CANARY_LATENCIES) <= measurement.samples < 2.2 * len(CANARY_LATENCIES)
