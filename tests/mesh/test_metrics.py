"""The series the mesh exports are exactly what the controller's builtin queries select."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from canary.config import Mesh
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE
from canary.metrics.comparison_queries import comparison_query, read_comparison
from canary.metrics.queries import (
    DurationQuery,
    Series,
    SuccessRateQuery,
    builtin_query,
    split_outcomes,
    success_rate,
)
from e2e.mesh.metrics import (
    ISTIO_BUCKETS,
    LINKERD_BUCKETS,
    Client,
    IstioMetrics,
    LinkerdMetrics,
    MeshMetrics,
    RequestRecord,
    make_metrics,
)
from e2e.mesh.routes import Endpoint

Sample = tuple[str, dict[str, str], float]

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')

CANARY = [Endpoint("test", f"podinfo-5d8f7c9b4-{s}", "u", "podinfo", "5d8f7c9b4", {"app": "podinfo"}) for s in "ab"]
PRIMARY = [
    Endpoint("test", f"podinfo-primary-6b7c8d9f5-{s}", "u", "podinfo-primary", "6b7c8d9f5", {"app": "podinfo-primary"})
    for s in "cd"
]
LOADGEN = Client(namespace="test", workload="mesh-loadgen", pod="mesh-loadgen")


def selector_of(promql: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The metric name and label matchers of the only vector selector in ``promql``."""
    (found,) = _SELECTOR.findall(promql)
    name, body = found
    matchers = [(m[0], m[1], m[2]) for m in _MATCHER.findall(body)]
    assert sum(len(m.group(0)) for m in _MATCHER.finditer(body)) == len(body), f"unparsed matchers in {body!r}"
    return name, matchers


def selects(matchers: list[tuple[str, str, str]], labels: dict[str, str]) -> bool:
    for key, op, value in matchers:
        actual = labels.get(key, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def samples(metrics: MeshMetrics) -> list[Sample]:
    text = metrics.exposition().decode()
    return [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def select(all_samples: Iterable[Sample], promql: str) -> list[Sample]:
    name, matchers = selector_of(promql)
    return [s for s in all_samples if s[0] == name and selects(matchers, s[1])]


def traffic(metrics: MeshMetrics) -> None:
    """Canary: 90 x 200 and 10 x 500 at 40 ms. Primary: 300 x 200 at 5 ms. Plus proxy errors."""
    for i in range(100):
        metrics.record(
            RequestRecord(
                authority="podinfo.test", namespace="test", backend="podinfo-canary", endpoint=CANARY[i % 2],
                status=500 if i % 10 == 0 else 200, latency_ms=40.0, client=LOADGEN,
            )
        )  # fmt: skip
    for i in range(300):
        metrics.record(
            RequestRecord(
                authority="podinfo.test", namespace="test", backend="podinfo-primary", endpoint=PRIMARY[i % 2],
                status=200, latency_ms=5.0, client=LOADGEN if i % 2 else None,
            )
        )  # fmt: skip
    # No ready canary pod: the proxy answers 503 itself, so no pod (and no inbound series) saw it.
    metrics.record(
        RequestRecord(
            authority="podinfo.test", namespace="test", backend="podinfo-canary", endpoint=None,
            status=503, latency_ms=0.0, client=LOADGEN, proxy_flag="UH",
        )
    )  # fmt: skip


def render(metric: str, mesh: Mesh, target: str) -> SuccessRateQuery | DurationQuery:
    return builtin_query(metric, mesh, namespace="test", target=target, window=timedelta(minutes=1))


@pytest.mark.parametrize(("mesh", "flavour"), [(Mesh.LINKERD, "linkerd"), (Mesh.ISTIO, "istio")])
def test_success_rate_query_selects_exactly_the_canary_requests(mesh: Mesh, flavour: str) -> None:
    metrics = make_metrics(flavour)
    traffic(metrics)
    query = render(BUILTIN_SUCCESS_RATE, mesh, "podinfo")
    assert isinstance(query, SuccessRateQuery)
    selected = select(samples(metrics), query.promql)
    assert selected, f"{query.promql} selects nothing"
    by_outcome: Counter[str] = Counter()
    for _, labels, value in selected:
        assert query.outcome_label in labels, f"{query.outcome_label} missing from {labels}"
        by_outcome[labels[query.outcome_label]] += value
    success, failure = split_outcomes(query, by_outcome.items())
    assert (success, failure) == (90, 10)
    assert success_rate(success, failure) == 90.0

    primary = render(BUILTIN_SUCCESS_RATE, mesh, "podinfo-primary")
    assert sum(v for *_, v in select(samples(metrics), primary.promql)) == 300


@pytest.mark.parametrize(
    ("mesh", "flavour", "bounds"), [(Mesh.LINKERD, "linkerd", LINKERD_BUCKETS), (Mesh.ISTIO, "istio", ISTIO_BUCKETS)]
)
def test_duration_query_selects_the_canary_latency_histogram(mesh: Mesh, flavour: str, bounds: tuple[float, ...]) -> None:
    metrics = make_metrics(flavour)
    traffic(metrics)
    query = render(BUILTIN_DURATION, mesh, "podinfo")
    assert isinstance(query, DurationQuery)
    assert "sum by (le)" in query.promql
    selected = select(samples(metrics), query.promql)
    assert selected, f"{query.promql} selects nothing"
    by_le: Counter[float] = Counter()
    for _, labels, value in selected:
        by_le[float(labels["le"])] += value
    assert sorted(by_le) == sorted([*map(float, bounds), float("inf")])
    assert by_le[float("inf")] == 100
    # 40 ms lands in every bucket whose bound is 40 or more, and in no other.
    assert all(count == (100 if le >= 40 else 0) for le, count in by_le.items())


def summed_by(selected: Iterable[Sample], labels: tuple[str, str]) -> list[Series]:
    """What ``sum by (labels)`` over the selected samples answers."""
    sums: dict[tuple[str, str], float] = {}
    for _, sample_labels, value in selected:
        key = (sample_labels.get(labels[0], ""), sample_labels.get(labels[1], ""))
        sums[key] = sums.get(key, 0.0) + value
    return [({labels[0]: a, labels[1]: b}, value) for (a, b), value in sums.items()]


@pytest.mark.parametrize(("mesh", "flavour"), [(Mesh.LINKERD, "linkerd"), (Mesh.ISTIO, "istio")])
def test_comparison_queries_select_both_versions(mesh: Mesh, flavour: str) -> None:
    metrics = make_metrics(flavour)
    traffic(metrics)
    query = comparison_query(mesh, namespace="test", canary="podinfo", primary="podinfo-primary",
                             window=timedelta(minutes=1))
    assert query.latency is not None
    exported = samples(metrics)
    outcomes = summed_by(select(exported, query.outcomes), (query.version_label, query.outcome_label))
    buckets = summed_by(select(exported, query.latency), (query.version_label, "le"))
    comparison = read_comparison(query, outcomes, buckets)
    # The proxy's own 503 (no pod) is not an inbound request of either version.
    assert (comparison.canary.requests, comparison.canary.failures) == (100, 10)
    assert (comparison.primary.requests, comparison.primary.failures) == (300, 0)
    assert comparison.canary.latency is not None and comparison.primary.latency is not None
    index = comparison.canary.latency.bounds.index(10.0)
    assert comparison.primary.latency.bounds.index(10.0) == index
    assert comparison.canary.latency.total - comparison.canary.latency.counts[index] == 100  # 40 ms each
    assert comparison.primary.latency.total - comparison.primary.latency.counts[index] == 0  # 5 ms each
    assert comparison.canary.latency.total == 100 and comparison.primary.latency.total == 300


def test_linkerd_series_names_and_labels() -> None:
    metrics = LinkerdMetrics()
    traffic(metrics)
    got = samples(metrics)
    names = {n for n, _, _ in got}
    assert {"request_total", "response_total", "response_latency_ms_bucket", "response_latency_ms_sum",
            "response_latency_ms_count"} <= names  # fmt: skip
    assert not any(n.endswith("_created") for n in names)
    inbound = [l for n, l, _ in got if n == "response_total" and l["direction"] == "inbound"]
    assert {l["deployment"] for l in inbound} == {"podinfo", "podinfo-primary"}
    assert all(l["tls"] == "true" and l["classification"] in ("success", "failure") for l in inbound)
    assert {(l["status_code"], l["classification"]) for l in inbound} == {("200", "success"), ("500", "failure")}
    outbound = [l for n, l, _ in got if n == "response_total" and l["direction"] == "outbound"]
    assert {l["dst_deployment"] for l in outbound} == {"podinfo", "podinfo-primary", ""}
    assert {l["deployment"] for l in outbound} == {"mesh-loadgen"}
    assert any(l["status_code"] == "503" and l["dst_service"] == "podinfo-canary" for l in outbound)
    requests = sum(v for n, l, v in got if n == "request_total" and l["direction"] == "inbound")
    assert requests == 400
    lat_sum = sum(v for n, l, v in got if n == "response_latency_ms_sum" and l.get("deployment") == "podinfo")
    assert lat_sum == pytest.approx(100 * 40.0)


def test_istio_series_names_and_labels() -> None:
    metrics = IstioMetrics()
    traffic(metrics)
    got = samples(metrics)
    names = {n for n, _, _ in got}
    assert {"istio_requests_total", "istio_request_duration_milliseconds_bucket",
            "istio_request_duration_milliseconds_sum", "istio_request_duration_milliseconds_count"} <= names  # fmt: skip
    dest = [l for n, l, _ in got if n == "istio_requests_total" and l["reporter"] == "destination"]
    assert {l["destination_workload"] for l in dest} == {"podinfo", "podinfo-primary"}
    assert {l["destination_service"] for l in dest} == {
        "podinfo-canary.test.svc.cluster.local", "podinfo-primary.test.svc.cluster.local"
    }
    assert {l["source_workload"] for l in dest} == {"mesh-loadgen", "unknown"}
    source = [l for n, l, _ in got if n == "istio_requests_total" and l["reporter"] == "source"]
    assert any(l["response_code"] == "503" and l["response_flags"] == "UH" for l in source)


def test_unknown_flavour() -> None:
    with pytest.raises(ValueError, match="osm"):
        make_metrics("osm")
