"""The synthetic Linkerd exposition the scale bench's Prometheus scrapes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from bench.scale_figures import histogram_buckets, parse_exposition, sum_samples
from bench.synthetic_mesh import SyntheticTraffic, Workload


def test_counters_grow_with_time_at_the_rate() -> None:
    traffic = SyntheticTraffic([Workload("bench", "app-0000")], rps=5.0, started=100.0)
    assert [traffic.requests_so_far(t) for t in (99.0, 100.0, 102.0, 102.3)] == [0, 0, 10, 11]


def test_each_workload_has_the_inbound_series_the_linkerd_queries_select() -> None:
    traffic = SyntheticTraffic([Workload("bench", "app-0000"), Workload("bench", "app-0001")], latency_ms=4.0,
                               started=0.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(traffic)
    samples = parse_exposition(generate_latest(registry).decode())
    for name in ("app-0000", "app-0001"):
        selector = {"namespace": "bench", "deployment": name, "direction": "inbound"}
        total = sum_samples(samples, "response_total", **selector)
        assert total is not None and total > 0
        assert sum_samples(samples, "response_total", classification="failure", **selector) is None
    buckets = dict(histogram_buckets(samples, "response_latency_ms"))
    assert buckets[3.0] == 0 and buckets[4.0] == buckets[float("inf")] > 0, "every request in the 4 ms bucket"
