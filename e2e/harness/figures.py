"""Summaries of measured durations for the fault suite's report (p50/p99 of failovers)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100): a value that was actually measured.

    With few samples p99 is the largest one, which is what an honest small-sample p99 is.
    """
    if not values:
        raise ValueError("no values to take a percentile of")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    ordered = sorted(values)
    return ordered[math.ceil(q / 100 * len(ordered)) - 1]


def summary(name: str, values: Sequence[float]) -> str:
    """``name: p50 1.2s, p99 3.4s, max 3.4s over n=5``."""
    return (f"{name}: p50 {percentile(values, 50):.1f}s, p99 {percentile(values, 99):.1f}s, "
            f"max {max(values):.1f}s over n={len(values)}")
