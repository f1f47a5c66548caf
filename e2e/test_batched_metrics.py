"""Batched builtin checks give every Canary what its own query gives, on a real Prometheus.

One exporter on loopback serves, for each mesh preset (linkerd, istio, osm, traefik), request
counters and latency histograms labelled as that mesh labels them, for Canaries with steady
traffic, with failures, with high latency, with none at all, plus look-alikes that no Canary's
query may count: a workload named like a Canary in another of their namespaces (the batched
regular expressions' cross product selects it), a longer workload name, and for Traefik the
primary's Service. Prometheus scrapes it; once it holds the final counts, every query here is
evaluated at one pinned instant (a loopback relay adds ``time=`` to each query), so the batched
query and the Canaries' own queries read the same samples and may be compared exactly.

For each preset and builtin check: one batched query answers all Canaries (counted by the
engine's query observer); each Canary's value equals its own query's to 1e-9, its sample count
too, and the verdicts (with their messages) are the same.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from canary.config import Mesh, MetricsSettings
from canary.domain.analysis import evaluate_metric
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE, MetricSpec, ThresholdRange
from canary.domain.status import CheckResult, Verdict
from canary.metrics.base import MeasureRequest, Measurement
from canary.metrics.batching import BuiltinBatcher
from canary.metrics.engine import MetricsEngine
from canary.metrics.prometheus import PrometheusProvider, QueryKind
from canary.metrics.traefik_services import CRD_PROVIDER, GATEWAY_PROVIDER, service_label
from e2e.prometheus import Prometheus, find_binary

pytestmark = pytest.mark.skipif(
    find_binary() is None, reason="no Prometheus binary (/usr/bin/prometheus); run e2e/cluster/build.sh to install it"
)

WINDOW = timedelta(minutes=10)
BOUNDS_MS = (5.0, 10.0, 50.0, 100.0, 500.0, 1000.0)
MIN_SAMPLES = 10
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)  # the checks' timestamp; it does not enter any verdict


@dataclass(frozen=True)
class Traffic:
    namespace: str
    workload: str
    latencies_ms: tuple[float, ...]
    failures: int  # the first ``failures`` requests fail


def _spread(count: int, low: float, high: float) -> tuple[float, ...]:
    return tuple(low + (high - low) * ((i * 37) % count) / count for i in range(count))


CANARIES = (
    Traffic("shop", "steady", _spread(200, 1.0, 40.0), failures=0),
    Traffic("pay", "steady", _spread(50, 2.0, 90.0), failures=1),
    Traffic("shop", "flaky", _spread(100, 5.0, 60.0), failures=30),
    Traffic("pay", "slow", _spread(80, 300.0, 1500.0), failures=0),
)
#: Asked about, never served: no series at all.
IDLE = ("shop", "idle")
DECOYS = (
    Traffic("pay", "flaky", _spread(500, 2000.0, 3000.0), failures=500),  # namespace of one, name of another
    Traffic("shop", "steady-old", _spread(300, 2000.0, 3000.0), failures=300),  # a longer name
)


@dataclass(frozen=True)
class Shape:
    """How one mesh labels a workload's series."""

    requests: str  # prometheus_client names, without _total / _bucket
    latency: str
    identity: tuple[str, ...]  # label names naming the workload
    outcome: str
    le_per_ms: float  # units of the histogram per millisecond

    def identities(self, mesh: Mesh, traffic: Traffic) -> list[tuple[str, ...]]:
        """The label values the workload's requests are counted under, one tuple per series."""
        ns, wl = traffic.namespace, traffic.workload
        if mesh is Mesh.LINKERD:
            return [(ns, wl, "inbound")]
        if mesh is Mesh.ISTIO:
            return [("destination", ns, wl)]
        if mesh is Mesh.OSM:
            return [(ns, "Deployment", wl)]
        # Traefik: the canary's Service, through both providers on two ports; a decoy's is the
        # primary's Service, which the Canary's own query must not count either.
        service = f"{wl}-canary" if traffic in CANARIES else f"{wl}-primary"
        return [(service_label(ns, service, 9898, GATEWAY_PROVIDER),), (service_label(ns, service, 80, CRD_PROVIDER),)]

    def outcome_value(self, mesh: Mesh, failed: bool) -> str:
        if mesh is Mesh.LINKERD:
            return "failure" if failed else "success"
        return "503" if failed else "200"


SHAPES = {
    Mesh.LINKERD: Shape("response", "response_latency_ms", ("namespace", "deployment", "direction"),
                        "classification", 1.0),
    Mesh.ISTIO: Shape("istio_requests", "istio_request_duration_milliseconds",
                      ("reporter", "destination_workload_namespace", "destination_workload"), "response_code", 1.0),
    Mesh.OSM: Shape("osm_request", "osm_request_duration_ms",
                    ("destination_namespace", "destination_kind", "destination_name"), "response_code", 1.0),
    Mesh.TRAEFIK: Shape("traefik_service_requests", "traefik_service_request_duration_seconds", ("service",),
                        "code", 0.001),
}


class MeshExporter:
    """Every mesh's series for :data:`CANARIES` and :data:`DECOYS`, on one loopback port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.counters: dict[Mesh, Counter] = {}
        self.histograms: dict[Mesh, Histogram] = {}
        for mesh, shape in SHAPES.items():
            self.counters[mesh] = Counter(shape.requests, "requests", [*shape.identity, shape.outcome],
                                          registry=self.registry)
            self.histograms[mesh] = Histogram(shape.latency, "latency", list(shape.identity),
                                              buckets=[b * shape.le_per_ms for b in BOUNDS_MS], registry=self.registry)
        server, thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.server, self.thread = server, thread
        self.address = f"127.0.0.1:{server.server_port}"

    def create(self) -> int:
        """Export every series at 0, so that the first scrape sees them start; returns how many
        request counters there are."""
        count = 0
        for mesh, shape in SHAPES.items():
            for traffic in (*CANARIES, *DECOYS):
                for identity in shape.identities(mesh, traffic):
                    for failed in (False, True):
                        self.counters[mesh].labels(*identity, shape.outcome_value(mesh, failed))
                        count += 1
                    self.histograms[mesh].labels(*identity)
        return count

    def serve(self) -> int:
        """Count every request; returns the sum of all request counters."""
        total = 0
        for mesh, shape in SHAPES.items():
            for traffic in (*CANARIES, *DECOYS):
                identities = shape.identities(mesh, traffic)
                for i, latency in enumerate(traffic.latencies_ms):
                    identity = identities[i % len(identities)]
                    self.counters[mesh].labels(*identity, shape.outcome_value(mesh, i < traffic.failures)).inc()
                    self.histograms[mesh].labels(*identity).observe(latency * shape.le_per_ms)
                    total += 1
        return total

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PinnedRelay:
    """Relays ``/api/v1/query`` to Prometheus with ``time`` set to one instant."""

    def __init__(self, upstream: str, at: float) -> None:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(parts.query))
                params["time"] = f"{relay.at:.3f}"
                url = f"{relay.upstream}{parts.path}?{urllib.parse.urlencode(params)}"
                try:
                    with urllib.request.urlopen(url, timeout=10) as response:
                        status, body = int(response.status), response.read()
                except urllib.error.HTTPError as exc:
                    status, body = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.upstream, self.at = upstream, at
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PinnedRelay]:
    exporter = MeshExporter()
    try:
        series = exporter.create()
        with Prometheus.start(Path(tmp_path_factory.mktemp("prometheus")), scrape_targets=[exporter.address]) as prom:
            names = "|".join(f"{shape.requests}_total" for shape in SHAPES.values())
            prom.wait_for_series(f'count({{__name__=~"{names}"}} == 0) == {series}', timeout=60)
            total = exporter.serve()
            prom.wait_for_series(f'sum({{__name__=~"{names}"}}) == {total}', timeout=60)
            # Every final count is in; from now on every query reads the samples up to here.
            pinned = PinnedRelay(prom.url, time.time())
            try:
                yield pinned
            finally:
                pinned.close()
    finally:
        exporter.close()


def _requests(metric: MetricSpec, mesh: Mesh) -> list[MeasureRequest]:
    asked = [(t.namespace, t.workload) for t in CANARIES] + [IDLE]
    return [
        MeasureRequest(metric=metric, namespace=ns, name=wl, target=wl, service=wl, window=WINDOW, mesh=mesh,
                       canary_service=f"{wl}-canary")
        for ns, wl in asked
    ]


def _check(metric: MetricSpec, measured: object) -> CheckResult:
    assert isinstance(measured, Measurement), measured
    return evaluate_metric(metric, value=measured.value, source=measured.source, now=NOW,
                           samples=measured.samples, min_samples=MIN_SAMPLES)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


METRICS = {
    BUILTIN_SUCCESS_RATE: MetricSpec(name=BUILTIN_SUCCESS_RATE, threshold_range=ThresholdRange(min=95)),
    BUILTIN_DURATION: MetricSpec(name=BUILTIN_DURATION, threshold_range=ThresholdRange(max=500)),
}
#: What the data is built to show, so that the comparison covers every verdict that matters.
EXPECTED = {
    BUILTIN_SUCCESS_RATE: [Verdict.PASS, Verdict.PASS, Verdict.FAIL, Verdict.PASS, Verdict.NO_DATA],
    BUILTIN_DURATION: [Verdict.PASS, Verdict.PASS, Verdict.PASS, Verdict.FAIL, Verdict.NO_DATA],
}


def _settings(url: str, mesh: Mesh) -> MetricsSettings:
    return MetricsSettings(prometheus_address=url, mesh=mesh, retry_attempts=3,
                           retry_max_wait=timedelta(milliseconds=200), query_timeout=timedelta(seconds=10))


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("mesh", list(SHAPES), ids=lambda m: m.value)
async def test_batched_answers_equal_single_answers(relay: PinnedRelay, mesh: Mesh, metric: str) -> None:
    spec = METRICS[metric]
    requests = _requests(spec, mesh)
    settings = _settings(relay.url, mesh)
    kinds: list[QueryKind] = []
    # Closed by its size, not by a clock: all requests share the one batch.
    engine = MetricsEngine(settings, on_query=kinds.append,
                           batcher=BuiltinBatcher(window=3600.0, max_members=len(requests)))
    single = PrometheusProvider(relay.url, settings)
    try:
        batched_results = await engine.measure_all(requests)
        single_results = [await single.measure(request) for request in requests]
    finally:
        engine.close()
        single.close()

    assert kinds == [QueryKind.BATCHED]
    batched = [_check(spec, m) for m in batched_results]
    alone = [_check(spec, m) for m in single_results]
    for request, b, s in zip(requests, batched, alone, strict=True):
        who = f"{request.namespace}/{request.target}"
        assert _same(b.value, s.value), (who, b.value, s.value)
        assert _same(b.samples, s.samples), (who, b.samples, s.samples)
        assert (b.verdict, b.message, b.source) == (s.verdict, s.message, s.source), who
    assert [s.verdict for s in alone] == EXPECTED[metric], [(s.verdict, s.message) for s in alone]

