"""Linkerd proxy metrics for many workloads at once, without sending a request.

The scale bench needs M progressing Canaries whose builtin checks (``request-success-rate``,
``request-duration``) get real series back from the real Prometheus. Driving real HTTP through
the simulated mesh (``e2e.mesh``) for 100 services would mean a loopback server per ready Pod and
hundreds of proxied requests a second on a 2-core machine shared with the API server, etcd,
kwok and the controller under measurement, so the figures would mostly measure the traffic.

What the controller sees of the mesh is only the exposition Prometheus scrapes, so this serves
that exposition directly: the same metric names, label names and bucket bounds as the simulated
mesh's Linkerd flavour (``e2e.mesh.metrics.LinkerdMetrics``), one inbound series set per
workload, whose counters grow as if every workload answered ``rps`` requests a second, all
successful, each taking ``latency_ms``. The counters are a function of the time since start,
so a scrape costs the same whatever the rate and nothing happens between scrapes.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from e2e.mesh.metrics import CONTENT_TYPE, LINKERD_BUCKETS, LinkerdMetrics

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Workload:
    namespace: str
    deployment: str


# eq=False: the registry keys its collectors by identity.
@dataclass(eq=False)
class SyntheticTraffic(Collector):
    """Inbound ``request_total``, ``response_total`` and ``response_latency_ms`` per workload."""

    workloads: Sequence[Workload]
    rps: float = 5.0
    latency_ms: float = 4.0
    started: float = field(default_factory=time.monotonic)

    def requests_so_far(self, now: float) -> int:
        return int(self.rps * max(0.0, now - self.started))

    def labels(self, workload: Workload) -> list[str]:
        """Values for :attr:`LinkerdMetrics.INBOUND`, as one receiving Pod's proxy reports them."""
        values = {
            "direction": "inbound", "authority": f"{workload.deployment}.{workload.namespace}.svc.cluster.local:8080",
            "tls": "true", "namespace": workload.namespace, "deployment": workload.deployment, "daemonset": "",
            "pod": f"{workload.deployment}-synthetic", "pod_template_hash": "synthetic",
        }  # fmt: skip
        return [values[name] for name in LinkerdMetrics.INBOUND]

    def collect(self) -> Iterator[Metric]:
        count = float(self.requests_so_far(time.monotonic()))
        inbound = list(LinkerdMetrics.INBOUND)
        requests = CounterMetricFamily("request", "Total count of HTTP requests.", labels=inbound)
        responses = CounterMetricFamily("response", "Total count of HTTP responses.",
                                        labels=[*inbound, "status_code", "classification"])
        latency = HistogramMetricFamily("response_latency_ms", "Elapsed times between a request's headers being "
                                        "received and its response stream completing", labels=[*inbound, "status_code"])
        # Every request in the bucket holding latency_ms, so the cumulative counts step there.
        first = bisect.bisect_left(LINKERD_BUCKETS, self.latency_ms)
        bounds = [f"{b:g}" for b in LINKERD_BUCKETS] + ["+Inf"]
        for workload in self.workloads:
            labels = self.labels(workload)
            requests.add_metric(labels, count)
            responses.add_metric([*labels, "200", "success"], count)
            buckets = [(le, count if i >= first else 0.0) for i, le in enumerate(bounds)]
            latency.add_metric([*labels, "200"], buckets, count * self.latency_ms)
        yield requests
        yield responses
        yield latency


class SyntheticMesh:
    """Serves :class:`SyntheticTraffic` on ``/metrics`` at a loopback port, from a thread."""

    def __init__(self, traffic: SyntheticTraffic) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(traffic)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    # Prometheus gave up on a slow scrape (a loaded machine); it scrapes again.
                    return

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
                """Quiet: Prometheus scrapes every second."""

        self.traffic = traffic
        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="synthetic-mesh", daemon=True)

    @property
    def address(self) -> str:
        """``host:port``, as a Prometheus static scrape target."""
        return f"{HOST}:{self.server.server_address[1]}"

    def __enter__(self) -> SyntheticMesh:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
