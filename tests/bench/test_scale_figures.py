"""The scale bench's arithmetic: quantiles from histogram deltas, percentiles, audit-derived figures."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from bench.scale_figures import (
    Row,
    bucket_deltas,
    due_seconds,
    first_writes_of_rounds,
    histogram_buckets,
    histogram_quantile,
    is_event_creation,
    judged,
    p50_p99_ms,
    parse_exposition,
    per_minute,
    percentile,
    render_table,
    requests_by_verb_and_resource,
    status_write_gaps,
    sum_samples,
    tick_to_tick,
)
from e2e.harness.audit import AuditRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INF = math.inf


def record(verb: str, resource: str, *, name: str = "app", subresource: str | None = None, at: float = 0.0,
           code: int = 200) -> AuditRecord:
    stamp = T0 + timedelta(seconds=at)
    return AuditRecord(audit_id=f"{verb}-{resource}-{name}-{at}", stage="ResponseComplete", verb=verb, user="u",
                       user_agent="canary-controller/1 (host_1)", uri=f"/apis/x/{resource}", api_group="x",
                       resource=resource, namespace="bench", name=name, subresource=subresource, code=code,
                       received=stamp, completed=stamp)


EXPOSITION = """\
# TYPE canary_tick_lateness_seconds histogram
canary_tick_lateness_seconds_bucket{le="0.01"} 5
canary_tick_lateness_seconds_bucket{le="0.1"} 9
canary_tick_lateness_seconds_bucket{le="+Inf"} 10
canary_tick_lateness_seconds_count 10
canary_tick_lateness_seconds_sum 0.7
# TYPE prometheus_http_requests_total counter
prometheus_http_requests_total{code="200",handler="/api/v1/query"} 40
prometheus_http_requests_total{code="400",handler="/api/v1/query"} 2
prometheus_http_requests_total{code="200",handler="/metrics"} 7
"""


def test_an_exposition_is_read_into_samples_summed_by_matching_labels() -> None:
    samples = parse_exposition(EXPOSITION)
    assert sum_samples(samples, "prometheus_http_requests_total", handler="/api/v1/query") == 42
    assert sum_samples(samples, "prometheus_http_requests_total") == 49
    assert sum_samples(samples, "canary_metric_queries_total") is None, "absent, not zero"
    assert histogram_buckets(samples, "canary_tick_lateness_seconds") == [(0.01, 5), (0.1, 9), (INF, 10)]


def test_the_window_counts_only_observations_made_in_it() -> None:
    before = [(0.01, 5.0), (0.1, 9.0), (INF, 10.0)]
    after = [(0.01, 15.0), (0.1, 19.0), (0.5, 3.0), (INF, 25.0)]
    assert bucket_deltas(before, after) == [(0.01, 10.0), (0.1, 10.0), (0.5, 3.0), (INF, 15.0)]


@pytest.mark.parametrize(("q", "expected"), [
    pytest.param(0.5, 0.01, id="median at the first bound"),
    pytest.param(0.25, 0.005, id="interpolated from zero in the first bucket"),
    pytest.param(0.7, 0.055, id="interpolated between bounds"),
    pytest.param(0.95, 0.1, id="in +Inf: the highest finite bound"),
])
def test_a_quantile_is_interpolated_within_its_bucket_as_histogram_quantile_does(q: float, expected: float) -> None:
    buckets = [(0.01, 10.0), (0.1, 18.0), (INF, 20.0)]
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_an_empty_histogram_has_no_quantile() -> None:
    assert histogram_quantile(0.99, []) is None
    assert histogram_quantile(0.99, [(0.1, 0.0), (INF, 0.0)]) is None


def test_percentiles_are_linear_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0, 5.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.0) == 1.0 and percentile(values, 1.0) == 5.0
    assert percentile(values, 0.9) == pytest.approx(4.6)
    assert percentile([], 0.5) is None


def test_rates_are_per_minute_of_the_window() -> None:
    assert per_minute(30, 120.0) == 15.0
    assert per_minute(5, 0.0) == 0.0


def test_requests_are_counted_by_verb_and_resource_with_the_subresource() -> None:
    records = [record("patch", "canaries", subresource="status"), record("patch", "canaries", subresource="status"),
               record("create", "events"), record("get", "leases")]
    counted = requests_by_verb_and_resource(records)
    assert counted == {("patch", "canaries/status"): 2, ("create", "events"): 1, ("get", "leases"): 1}
    assert [is_event_creation(r) for r in records] == [False, False, True, False]


def test_status_write_gaps_are_per_canary_and_skip_repeats_within_a_tick() -> None:
    writes = [
        record("patch", "canaries", name="a", subresource="status", at=0.0),
        record("patch", "canaries", name="a", subresource="status", at=0.3),  # same tick: a second write
        record("patch", "canaries", name="a", subresource="status", at=10.1),
        record("patch", "canaries", name="b", subresource="status", at=5.0),
        record("patch", "canaries", name="b", subresource="status", at=15.0),
        record("patch", "canaries", name="b", subresource="status", at=25.2, code=409),  # refused: not a tick
        record("patch", "canaries", name="idle", subresource="status", at=1.0),
        record("patch", "canaries", name="idle", subresource="status", at=11.0),
        record("update", "trafficsplits", name="a", at=20.0),
    ]
    gaps = status_write_gaps(writes, ["a", "b"], interval=10.0)
    assert sorted(gaps) == pytest.approx([10.0, 10.1])


def test_a_gap_of_a_tick_that_wrote_nothing_is_counted_apart() -> None:
    assert tick_to_tick([10.0, 10.2, 20.1, 9.9, 14.9, 15.0], interval=10.0) == ([10.0, 10.2, 9.9, 14.9], 2)


def test_a_judged_row_passes_at_the_target_and_fails_when_not_measured() -> None:
    assert judged("rss", 186.0, "MiB", at_most=186.0, target="<= 186 MiB", digits=0).verdict == "pass"
    assert judged("rss", 186.4, "MiB", at_most=186.0, target="<= 186 MiB", digits=0).verdict == "FAIL"
    missing = judged("p99", None, "s", at_most=0.1, target="<= 0.100 s")
    assert (missing.value, missing.verdict) == ("not measured", "FAIL")
    assert Row("info", "3").verdict == ""


def test_the_table_aligns_every_row_under_its_header() -> None:
    table = render_table([Row("a", "1 s", "<= 2 s", True), Row("longer figure", "10 s", "<= 2 s", False)])
    header, rule, *lines = table.splitlines()
    assert header.startswith("figure") and set(rule) == {"-"}
    assert [line.split()[-1] for line in lines] == ["pass", "FAIL"]
    assert len({line.index("<=") for line in lines}) == 1


def test_due_seconds_counts_the_distinct_seconds_of_the_interval_ticks_fall_on() -> None:
    stamps = ["2026-12-07T10:00:01Z", "2026-12-07T10:00:11Z", "2026-12-07T10:00:21+00:00",
              "2026-12-07T10:00:04Z", "2026-12-07T10:01:04Z"]
    assert due_seconds(stamps, 10.0) == 2
    assert due_seconds([], 10.0) == 0


def test_a_rounds_start_is_its_first_status_write_after_its_second() -> None:
    writes = [
        record("patch", "canaries", name="a", subresource="status", at=10.12),
        record("patch", "canaries", name="b", subresource="status", at=10.10),
        record("patch", "canaries", name="c", subresource="status", at=10.45),  # down the round's queue
        record("patch", "canaries", name="a", subresource="status", at=20.11),
        record("patch", "canaries", name="b", subresource="status", at=20.40),
        record("patch", "canaries", name="c", subresource="status", at=13.05, code=409),  # refused
        record("patch", "canaries", name="idle", subresource="status", at=13.01),  # not progressing
        record("update", "trafficsplits", name="a", at=30.0),
    ]
    assert first_writes_of_rounds(writes, ["a", "b", "c"]) == pytest.approx([0.10, 0.11])


def test_p50_p99_ms_formats_seconds_as_milliseconds() -> None:
    assert p50_p99_ms([0.010, 0.020, 0.030]) == "20 / 30 ms"
    assert p50_p99_ms([]) == "none"
