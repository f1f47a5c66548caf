"""The decision benchmark's traffic: seeded, cumulative, and split by the route weight set."""

from __future__ import annotations

import numpy as np
import pytest

from bench.traffic import BOUNDS, Traffic, Version

PRIMARY = Version(failure_probability=0.001, median_ms=50.0, p99_ms=200.0)


def run(seed: int) -> Traffic:
    t = Traffic(np.random.default_rng(seed), rps=20.0, canary=PRIMARY.scaled_latency(2), primary=PRIMARY,
                horizon=600)
    t.advance_to(100)
    t.set_weight(30)
    t.advance_to(600)
    return t


def test_the_canary_serves_nothing_before_it_gets_weight_and_its_share_after() -> None:
    t = run(3)
    assert t.canary.requests[100] == 0
    canary = t.canary.requests[600]
    total = canary + t.primary.requests[600] - t.primary.requests[100]
    assert abs(canary / total - 0.3) < 0.03  # 10,000 requests: the share is within a few sigma


def test_counters_are_cumulative_and_buckets_are_cumulative_in_le() -> None:
    t = run(3)
    for series in (t.canary, t.primary):
        assert np.all(np.diff(series.requests) >= 0)
        assert np.all(np.diff(series.failures) >= 0)
        assert np.all(np.diff(series.buckets, axis=1) >= 0)
        assert np.all(series.failures <= series.requests)


def test_the_same_seed_draws_the_same_traffic() -> None:
    assert np.array_equal(run(5).canary.buckets, run(5).canary.buckets)
    assert not np.array_equal(run(5).canary.buckets, run(6).canary.buckets)


def test_bucket_probabilities_put_the_p99_where_it_was_asked() -> None:
    cumulative = np.cumsum(PRIMARY.bucket_probabilities())
    assert cumulative[-1] == pytest.approx(1.0)
    assert cumulative[BOUNDS.index(200.0)] == pytest.approx(0.99, abs=1e-6)
    assert cumulative[BOUNDS.index(50.0)] == pytest.approx(0.5, abs=1e-6)


def test_the_clock_only_moves_forward_and_within_the_horizon() -> None:
    t = run(1)
    with pytest.raises(ValueError):
        t.advance_to(500)
    with pytest.raises(ValueError):
        t.advance_to(601)
