"""Seeded traffic for the decision benchmark: what a Linkerd proxy would have counted, second by
second, for the canary and the primary at the route weight the controller last set.

Per simulated second each version receives Poisson(rate x its share) requests; each fails
independently with the version's failure probability, and its latency is lognormal, binned into
Linkerd's ``response_latency_ms`` buckets (a multinomial draw over the bucket probabilities is the
same distribution as binning one lognormal draw per request, at a fraction of the cost). Counts are
kept cumulative per second, so the increase over any window ending at any whole second is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from e2e.mesh.metrics import LINKERD_BUCKETS

#: The histogram's ``le`` bounds as Prometheus exposes them: Linkerd's, then ``+Inf``.
BOUNDS: tuple[float, ...] = (*(float(b) for b in LINKERD_BUCKETS), math.inf)
#: A normal distribution's 99th percentile in standard deviations.
_Z99 = 2.3263478740408408

Counts = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Version:
    """How one version behaves: its failure probability and its latency distribution."""

    failure_probability: float
    median_ms: float
    p99_ms: float

    def scaled_latency(self, factor: float) -> Version:
        """The same shape, every request ``factor`` times slower (so the p99 is too)."""
        return Version(self.failure_probability, self.median_ms * factor, self.p99_ms * factor)

    def bucket_probabilities(self) -> npt.NDArray[np.float64]:
        """The chance that one request lands in each bucket (non-cumulative, ``+Inf`` last)."""
        sigma = math.log(self.p99_ms / self.median_ms) / _Z99
        mu = math.log(self.median_ms)
        cdf = [0.5 * (1.0 + math.erf((math.log(b) - mu) / (sigma * math.sqrt(2.0)))) for b in BOUNDS[:-1]]
        cumulative = np.array([*cdf, 1.0])
        probabilities: npt.NDArray[np.float64] = np.clip(np.diff(cumulative, prepend=0.0), 0.0, 1.0)
        probabilities /= probabilities.sum()
        return probabilities


class Series:
    """One version's cumulative counters: ``requests``, ``failures`` and the cumulative ``le``
    buckets, indexed by the second at which they are read (index t covers seconds [0, t))."""

    def __init__(self, horizon: int, version: Version) -> None:
        self.version = version
        self.failures: Counts = np.zeros(horizon + 1, dtype=np.int64)
        self.buckets: Counts = np.zeros((horizon + 1, len(BOUNDS)), dtype=np.int64)
        self._probabilities = version.bucket_probabilities()

    @property
    def requests(self) -> Counts:
        return self.buckets[:, -1]

    def fill(self, rng: np.random.Generator, start: int, end: int, rate: float) -> None:
        """Draw seconds [start, end) at ``rate`` requests per second."""
        if end <= start:
            return
        if rate <= 0.0:
            self.failures[start + 1:end + 1] = self.failures[start]
            self.buckets[start + 1:end + 1] = self.buckets[start]
            return
        span = end - start
        requests = rng.poisson(rate, span)
        failures = rng.binomial(requests, self.version.failure_probability)
        per_bucket = rng.multinomial(requests, self._probabilities)
        self.failures[start + 1:end + 1] = self.failures[start] + np.cumsum(failures)
        self.buckets[start + 1:end + 1] = self.buckets[start] + np.cumsum(np.cumsum(per_bucket, axis=1), axis=0)


class Traffic:
    """Both versions' counters over a simulated clock of whole seconds from 0 to ``horizon``.

    ``advance_to(t)`` draws the seconds up to ``t`` at the canary weight currently set; a weight
    set with ``set_weight`` applies from the current second on, as a route change would.
    """

    def __init__(self, rng: np.random.Generator, *, rps: float, canary: Version, primary: Version,
                 horizon: int) -> None:
        self.rng = rng
        self.rps = rps
        self.horizon = horizon
        self.canary = Series(horizon, canary)
        self.primary = Series(horizon, primary)
        self.now = 0
        self.canary_weight = 0

    def set_weight(self, canary_weight: int) -> None:
        self.canary_weight = canary_weight

    def advance_to(self, second: int) -> None:
        if second < self.now:
            raise ValueError(f"the simulated clock cannot go back from {self.now}s to {second}s")
        if second > self.horizon:
            raise ValueError(f"{second}s is past the simulated horizon {self.horizon}s")
        share = self.canary_weight / 100.0
        self.canary.fill(self.rng, self.now, second, self.rps * share)
        self.primary.fill(self.rng, self.now, second, self.rps * (1.0 - share))
        self.now = second
