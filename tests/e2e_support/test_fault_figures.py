"""The fault suite's small pure helpers: percentiles of measured durations, the size knob, and the
background recorder's window."""

from __future__ import annotations

import pytest

from e2e.harness.chaos import CHAOS_ENV, full_scale, scaled
from e2e.harness.figures import percentile, summary
from e2e.harness.sampling import Change, Recorder


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([16.2], 50, 16.2),
    ([16.2], 99, 16.2),
    ([17.0, 15.0, 16.0], 50, 16.0),
    ([17.0, 15.0, 16.0, 18.0], 50, 16.0),
    ([17.0, 15.0, 16.0, 18.0, 25.0], 99, 25.0),
    ([float(v) for v in range(1, 201)], 99, 198.0),
], ids=["one-p50", "one-p99", "odd-p50", "even-p50", "few-p99-is-max", "many-p99"])
def test_percentiles_are_nearest_rank_values_that_were_measured(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], 0), ([1.0], 101)], ids=["empty", "zero", "above-100"])
def test_a_percentile_of_nothing_or_out_of_range_is_refused(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_the_summary_names_p50_p99_and_the_count() -> None:
    assert summary("failover", [15.5, 17.25, 16.0]) == "failover: p50 16.0s, p99 17.2s, max 17.2s over n=3"


@pytest.mark.parametrize(("value", "full"), [(None, False), ("", False), ("fast", False), ("full", True),
                                             (" FULL ", True)], ids=["unset", "empty", "other", "full", "spaced"])
def test_the_suite_runs_full_size_only_when_asked(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                                  full: bool) -> None:
    if value is None:
        monkeypatch.delenv(CHAOS_ENV, raising=False)
    else:
        monkeypatch.setenv(CHAOS_ENV, value)
    assert full_scale() is full
    assert scaled(2, 6) == (6 if full else 2)


def test_a_window_starts_with_the_value_current_at_its_start() -> None:
    recorder: Recorder[int] = Recorder(lambda: 0)
    recorder.changes = [Change(1.0, 10), Change(2.0, 20), Change(3.0, None), Change(4.0, 40)]
    assert recorder.since(2.5) == [20, None, 40]
    assert recorder.since(2.0) == [20, None, 40]
    assert recorder.since(0.5) == [10, 20, None, 40]
    assert recorder.since(9.0) == [40]
