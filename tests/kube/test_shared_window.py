"""The metric window ProbeRunner asks for: the domain's, cut to whole seconds while clipped to the run."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from canary.domain.analysis import MIN_QUERY_WINDOW, query_window
from canary.domain.spec import MetricSpec, ThresholdRange
from canary.kube.probes import shared_window

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
INTERVAL = timedelta(seconds=10)


def metric(interval: timedelta | None = None) -> MetricSpec:
    return MetricSpec(name="request-success-rate", threshold_range=ThresholdRange(min=99), interval=interval)


@pytest.mark.parametrize("since_start_ms", [20_003, 20_480, 20_999])
def test_runs_begun_in_the_same_second_ask_for_the_same_window(since_start_ms: int) -> None:
    since_start = timedelta(milliseconds=since_start_ms)
    window = shared_window(metric(timedelta(minutes=1)), INTERVAL, NOW - since_start, NOW)
    assert window == timedelta(seconds=20)
    # Never longer than the domain's: it must not reach back before the run.
    assert window <= query_window(metric(timedelta(minutes=1)), INTERVAL, NOW - since_start, NOW)


def test_a_window_that_is_not_clipped_is_the_domains_to_the_millisecond() -> None:
    configured = timedelta(seconds=1, milliseconds=500)
    assert shared_window(metric(configured), INTERVAL, NOW - timedelta(hours=1), NOW) == configured
    assert shared_window(metric(), INTERVAL, None, NOW) == INTERVAL


def test_a_run_younger_than_the_floor_asks_for_the_floor() -> None:
    assert shared_window(metric(), INTERVAL, NOW - timedelta(milliseconds=300), NOW) == MIN_QUERY_WINDOW
