"""Request metrics named and labelled as Linkerd's or Istio's proxies export them.

A real mesh proxy counts every request it sees; Prometheus then adds ``namespace``, ``pod`` and
``deployment`` from the Pod's labels while scraping. Here one process plays every proxy and
Prometheus scrapes it as a static target, so those labels are in the exposition itself.

* **Linkerd** (``--metrics-flavour linkerd``): ``request_total``, ``response_total`` and the
  histogram ``response_latency_ms``. Inbound series (``direction="inbound"``) are the receiving
  Pod's proxy's view: ``namespace``, ``deployment``, ``pod``, ``authority``, ``tls``, plus
  ``status_code`` and ``classification`` (``failure`` for 5xx) on responses. Outbound series
  (``direction="outbound"``) are the meshed client's view (the load generator), with
  ``dst_namespace``, ``dst_service``, ``dst_deployment`` and ``dst_pod``.
* **Istio** (``--metrics-flavour istio``): ``istio_requests_total`` and the histogram
  ``istio_request_duration_milliseconds``, with ``reporter="destination"`` for the receiving
  Pod and ``reporter="source"`` for a meshed client.

Counts live in plain dictionaries owned by the event loop: recording a request is a handful of
dictionary updates, and a custom collector turns them into metric families on scrape (which
also keeps ``prometheus_client``'s ``_created`` series out of the exposition).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from e2e.mesh.routes import Endpoint

Flavour = Literal["linkerd", "istio"]
FLAVOURS: tuple[Flavour, ...] = ("linkerd", "istio")

#: Linkerd's response_latency_ms bucket bounds, in milliseconds.
LINKERD_BUCKETS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500,
    1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000,
)  # fmt: skip
#: Istio's default istio_request_duration_milliseconds bucket bounds.
ISTIO_BUCKETS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Client:
    """A meshed client, whose own (outbound) proxy also reports the request."""

    namespace: str
    workload: str
    pod: str


@dataclass(frozen=True)
class RequestRecord:
    authority: str
    namespace: str
    #: The backend Service the request was sent to, None when no backend could be chosen.
    backend: str | None
    #: The Pod that received the request; None when the proxy answered by itself.
    endpoint: Endpoint | None
    status: int
    latency_ms: float
    client: Client | None = None
    #: Why the proxy answered by itself: Envoy's response flag (UH: no healthy upstream,
    #: NR: no route, UF: upstream connection failure), "-" otherwise.
    proxy_flag: str = "-"


class MeshMetrics(Protocol):
    flavour: Flavour
    registry: CollectorRegistry

    def record(self, rec: RequestRecord) -> None: ...

    def exposition(self) -> bytes: ...


class _Counters:
    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...]) -> None:
        self.values[key] = self.values.get(key, 0.0) + 1.0

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(list(key), value)
        return family


class _Histograms:
    def __init__(self, name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.bounds = list(bounds)
        self._le = [_format_bound(b) for b in bounds] + ["+Inf"]
        # Per label set: per-bucket (not cumulative) counts, one more for +Inf, then the sum.
        self.values: dict[tuple[str, ...], list[float]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        slots = self.values.get(key)
        if slots is None:
            slots = self.values[key] = [0.0] * (len(self.bounds) + 2)
        slots[bisect.bisect_left(self.bounds, value)] += 1
        slots[-1] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, slots in self.values.items():
            running, buckets = 0.0, []
            for le, count in zip(self._le, slots[:-1], strict=True):
                running += count
                buckets.append((le, running))
            family.add_metric(list(key), buckets, slots[-1])
        return family


def _format_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


class _FamiliesCollector(Collector):
    def __init__(self, families: Sequence[_Counters | _Histograms]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.family()


def _classification(status: int) -> str:
    return "failure" if status >= 500 else "success"


class LinkerdMetrics:
    """Linkerd proxy metrics: inbound per receiving Pod, outbound per meshed client."""

    flavour: Flavour = "linkerd"

    # Linkerd's scrape configuration names the owning workload by its kind: deployment= or daemonset=.
    INBOUND = ("direction", "authority", "tls", "namespace", "deployment", "daemonset", "pod", "pod_template_hash")
    OUTBOUND = (
        "direction", "authority", "tls", "namespace", "deployment", "pod",
        "dst_namespace", "dst_service", "dst_deployment", "dst_pod",
    )  # fmt: skip

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.in_requests = _Counters("request", "Total count of HTTP requests.", self.INBOUND)
        self.in_responses = _Counters(
            "response", "Total count of HTTP responses.", (*self.INBOUND, "status_code", "classification")
        )
        self.in_latency = _Histograms(
            "response_latency_ms", "Elapsed times between a request's headers being received and its "
            "response stream completing", (*self.INBOUND, "status_code"), LINKERD_BUCKETS,
        )  # fmt: skip
        # Both directions share metric names, so each name is one family with both label sets:
        # the collector emits the inbound and outbound samples under one HELP/TYPE block.
        self.out_requests = _Counters("request", "", self.OUTBOUND)
        self.out_responses = _Counters("response", "", (*self.OUTBOUND, "status_code", "classification"))
        self.out_latency = _Histograms("response_latency_ms", "", (*self.OUTBOUND, "status_code"), LINKERD_BUCKETS)
        self.registry.register(_LinkerdCollector(self))

    def record(self, rec: RequestRecord) -> None:
        status = str(rec.status)
        classification = _classification(rec.status)
        ep = rec.endpoint
        if ep is not None:
            key = ("inbound", rec.authority, "true", ep.namespace, ep.deployment, ep.daemonset, ep.name,
                   ep.pod_template_hash)
            self.in_requests.inc(key)
            self.in_responses.inc((*key, status, classification))
            self.in_latency.observe((*key, status), rec.latency_ms)
        client = rec.client
        if client is not None:
            out = (
                "outbound", rec.authority, "true", client.namespace, client.workload, client.pod,
                rec.namespace, rec.backend or "", ep.deployment if ep else "", ep.name if ep else "",
            )  # fmt: skip
            self.out_requests.inc(out)
            self.out_responses.inc((*out, status, classification))
            self.out_latency.observe((*out, status), rec.latency_ms)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _LinkerdCollector(Collector):
    def __init__(self, metrics: LinkerdMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        for inbound, outbound in (
            (m.in_requests, m.out_requests),
            (m.in_responses, m.out_responses),
            (m.in_latency, m.out_latency),
        ):
            family = inbound.family()
            family.samples.extend(outbound.family().samples)
            yield family


class IstioMetrics:
    """Istio standard metrics, reported by the destination's and the meshed source's sidecars."""

    flavour: Flavour = "istio"

    LABELS = (
        "reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app",
        "destination_workload", "destination_workload_namespace", "destination_principal",
        "destination_app", "destination_version", "destination_service", "destination_service_name",
        "destination_service_namespace", "destination_canonical_service", "request_protocol",
        "response_code", "grpc_response_status", "response_flags", "connection_security_policy",
    )  # fmt: skip

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = _Counters("istio_requests", "Total requests.", self.LABELS)
        self.duration = _Histograms(
            "istio_request_duration_milliseconds", "Request duration in milliseconds.", self.LABELS, ISTIO_BUCKETS
        )
        self.registry.register(_FamiliesCollector((self.requests, self.duration)))

    def record(self, rec: RequestRecord) -> None:
        ep = rec.endpoint
        client = rec.client
        src_workload = client.workload if client else "unknown"
        src_namespace = client.namespace if client else "unknown"
        src_principal = f"spiffe://cluster.local/ns/{client.namespace}/sa/default" if client else "unknown"
        service = rec.backend or "unknown"
        service_fqdn = f"{rec.backend}.{rec.namespace}.svc.cluster.local" if rec.backend else "unknown"
        if ep is not None:
            dst_workload, dst_namespace = ep.deployment or ep.daemonset or "unknown", ep.namespace
            dst_principal = f"spiffe://cluster.local/ns/{ep.namespace}/sa/default"
            dst_app = ep.labels.get("app", "unknown")
            dst_version = ep.labels.get("version", "unknown")
            canonical = ep.labels.get("service.istio.io/canonical-name", ep.labels.get("app", dst_workload))
        else:
            dst_workload = dst_namespace = dst_principal = dst_app = dst_version = canonical = "unknown"
        common = (
            src_workload, src_namespace, src_principal, "unknown",
            dst_workload, dst_namespace, dst_principal, dst_app, dst_version,
            service_fqdn, service, rec.namespace if rec.backend else "unknown", canonical,
            "http", str(rec.status), "-", rec.proxy_flag,
        )  # fmt: skip
        if ep is not None:
            key = ("destination", *common, "mutual_tls")
            self.requests.inc(key)
            self.duration.observe(key, rec.latency_ms)
        if client is not None:
            key = ("source", *common, "unknown")
            self.requests.inc(key)
            self.duration.observe(key, rec.latency_ms)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def make_metrics(flavour: str) -> MeshMetrics:
    if flavour == "linkerd":
        return LinkerdMetrics()
    if flavour == "istio":
        return IstioMetrics()
    raise ValueError(f"unknown metrics flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}")


def metrics_app(metrics: MeshMetrics) -> web.Application:
    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    return app
