"""How a builtin check's answer (the series of its query) becomes a measurement.

One function for both ways of asking: a Canary's own query, and its share of a batched query
(:mod:`canary.metrics.batch_queries`), so the two cannot read the same numbers differently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from canary.metrics.base import Measurement
from canary.metrics.queries import (
    DURATION_QUANTILE,
    BuiltinQuery,
    DurationQuery,
    Series,
    SuccessRateQuery,
    histogram_from_buckets,
    split_outcomes,
    success_rate,
)


def read_builtin(query: BuiltinQuery, series: Sequence[Series]) -> Measurement:
    """The measurement of ``query``'s answer ``series``; its source is ``query``'s PromQL."""
    if isinstance(query, SuccessRateQuery):
        return _success_rate(query, series)
    return _duration(query, series)


def _success_rate(query: SuccessRateQuery, series: Sequence[Series]) -> Measurement:
    counts = [(labels.get(query.outcome_label, ""), value) for labels, value in series]
    if any(not math.isfinite(value) for _, value in counts):
        return Measurement(value=None, source=query.promql)
    success, failure = split_outcomes(query, counts)
    return Measurement(value=success_rate(success, failure), source=query.promql, samples=success + failure)


def _duration(query: DurationQuery, series: Sequence[Series]) -> Measurement:
    if any(not math.isfinite(value) for _, value in series):
        return Measurement(value=None, source=query.promql)
    histogram = histogram_from_buckets(((labels.get("le", ""), value) for labels, value in series),
                                       query.le_unit_ms)
    # No +Inf bucket (an odd exporter): the request count is unknown, and so is the quantile.
    samples = histogram.total if histogram.bounds and math.isinf(histogram.bounds[-1]) else None
    return Measurement(value=histogram.quantile(DURATION_QUANTILE), source=query.promql, samples=samples)
