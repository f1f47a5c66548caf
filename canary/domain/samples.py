"""What a canary-versus-primary measurement carries: request and failure counts per version, and
each version's latency histogram, all over the same window.

Counts come from Prometheus ``increase()``, which extrapolates to the window's edges: they are
floats, not integers, and the statistics accept them as such. A count that is negative, NaN or
infinite is never produced here: the provider code drops such answers as no data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Histogram:
    """A cumulative latency histogram as Prometheus keeps it: ``counts[i]`` requests took at most
    ``bounds[i]`` milliseconds. Bounds ascend; the last one is usually ``inf`` (every request)."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.counts):
            raise ValueError("a histogram needs one count per bound")
        if any(b >= a for a, b in zip(self.bounds[1:], self.bounds)):
            raise ValueError("histogram bounds must ascend")

    @property
    def total(self) -> float:
        """Requests observed: the ``+Inf`` bucket, or the largest count when it is missing."""
        return max(self.counts, default=0.0)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile in ms, interpolated as PromQL's ``histogram_quantile`` does: linearly
        inside the bucket that holds the rank, from 0 for the first bucket, and the second-highest
        bound when the rank falls in the ``+Inf`` bucket. None without requests."""
        if not self.bounds or not math.isinf(self.bounds[-1]):
            return None
        # Counts from increase() can dip a little between buckets; Prometheus smooths the same way.
        counts: list[float] = []
        for count in self.counts:
            counts.append(max(count, counts[-1]) if counts else count)
        total = counts[-1]
        if total <= 0:
            return None
        rank = q * total
        for index, (bound, count) in enumerate(zip(self.bounds, counts)):
            if count >= rank:
                if math.isinf(bound):
                    return self.bounds[-2] if len(self.bounds) > 1 else None
                lower_bound = self.bounds[index - 1] if index > 0 else 0.0
                lower_count = counts[index - 1] if index > 0 else 0.0
                if lower_bound > bound or count == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        return self.bounds[-2] if len(self.bounds) > 1 else None


@dataclass(frozen=True)
class ArmSample:
    """One version's traffic over the window: requests, failed requests, latency (if measured)."""

    requests: float
    failures: float
    latency: Histogram | None = None

    @property
    def error_rate(self) -> float | None:
        """Failed requests in percent, None without requests."""
        return self.failures / self.requests * 100.0 if self.requests > 0 else None


@dataclass(frozen=True)
class Comparison:
    """The canary and the primary over the same window, and the queries that measured them."""

    canary: ArmSample
    primary: ArmSample
    source: str

    @property
    def canary_share(self) -> float | None:
        """The canary's share of the requests both versions served, None without requests."""
        total = self.canary.requests + self.primary.requests
        return self.canary.requests / total if total > 0 else None
