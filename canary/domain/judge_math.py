"""The judge's statistics: how much evidence a step's counts hold that the canary is worse than
the primary by more than a tolerance, as an e-value (a bet against the null that pays ``E``).

The model (docs/analysis.md has the long form). Within one step the requests reach the two
versions at a fixed share ``rho``; each request of version ``v`` is an *event* (it failed, or it
was slower than a latency bound) with probability ``p_v(t)``, which may drift with time as long
as it drifts for both. Given that an event happened, it came from the canary with probability
``q = rho p_c / (rho p_c + (1 - rho) p_p)``. The null "the canary is at most ``1 + r`` times as
bad as the primary, at every moment" is ``q <= q0 = rho (1 + r) / (rho (1 + r) + 1 - rho)``:
the primary's own rate cancels, so it never has to be estimated, and a bad hour that hits both
versions moves ``m`` (how many events there are) but not ``q``.

The statistic for ``x`` canary events out of ``m``, both real numbers because Prometheus's
``increase()`` extrapolates, is the likelihood ratio of ``q`` against ``q0`` averaged over
``q ~ Uniform(q0, 1)``::

    E = integral_{q0}^{1} (q / q0)^x ((1 - q) / (1 - q0))^(m - x) dq / (1 - q0)

Why it may be looked at after every scrape. Take the events one at a time in the order they
happen. Each one multiplies the ratio for a fixed ``q`` by ``q / q0`` (canary) or
``(1 - q) / (1 - q0)`` (primary), a factor whose expectation, under any ``q' <= q0`` that the
null allows, is ``q' q / q0 + (1 - q')(1 - q) / (1 - q0) <= 1`` because ``q >= q0``. So for every
``q`` on the prior's support the ratio is a nonnegative supermartingale, and so is their
average ``E``, whatever the stopping rule: by Ville's inequality the chance that ``E`` *ever*
reaches ``1 / alpha`` is at most ``alpha``. Looking more often only looks at the same path more
often; it does not add chances, which is exactly what a fixed-sample test repeated every
interval gets wrong. Requests that are not events leave ``E`` alone, and so do looks with
nothing new. A step restarts the bet from ``E = 1`` when the weight (and so ``rho``) changes;
the controller multiplies the finished steps' ``E`` (adds their logs) into the current one, and
the product of bets each fair given everything before it is again such a supermartingale.

Several bets at once. Under "at every latency bound the canary's share of slow requests is at
most ``1 + r`` times the primary's", every bound's ``E`` is a supermartingale on the same
sequence of requests, so their average is one too (``latency_log_evidence``); tests that each
hold ``alpha / k`` reject when ``E >= k / alpha`` (:attr:`JudgeSpec.evidence_bound`).

Numbers. ``E`` is computed in log space from ``betaln`` and the regularized incomplete beta
``betaincc`` of scipy.special (plain ufuncs: frozen scipy.stats distributions cost a hundred
times more per call, and the benchmark calls this millions of times). When the canary is far
better than ``q0`` that tail underflows while ``E`` itself stays moderate; there ``E`` comes from
the identity ``E = q0 / (m - x + 1) * 2F1(m + 2, 1; m - x + 2; 1 - q0)``, whose series has
positive, geometrically shrinking terms exactly in that regime. ``E >= 1 / (m - x + 1)`` always
(every term of that series is at least ``(1 - q0)^k``), which bounds the result from below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaincc, betaln

from canary.domain.samples import Histogram

#: Below this the upper tail's logarithm is taken from the series instead: far above the
#: smallest normal double, so ``log`` of the ufunc's answer still carries full precision.
_TAIL_FLOOR = 1e-250

#: Terms summed per round of the series, and the most rounds before it is cut short. A cut
#: series is a lower bound of ``E``, so cutting it only costs power, never validity.
_SERIES_CHUNK = 4096
_SERIES_MAX_CHUNKS = 64

#: The largest log-evidence reported: finite, far beyond any rejection bound.
_LOG_E_CEILING = 1e12


@dataclass(frozen=True)
class LatencyEvidence:
    """The latency test's log e-value, and the bucket bound (ms) whose own evidence is largest
    (the one to show a human), None when the histograms share no finite bound."""

    log_e: float
    worst_bound: float | None


def null_share(canary_share: float, tolerance: float) -> float:
    """``q0``: the largest share of the events the canary may hold under the null, given its share
    ``rho`` of the requests and the relative tolerance ``r``. NaN when ``rho`` is outside (0, 1)."""
    if not 0.0 < canary_share < 1.0:
        return math.nan
    r = tolerance if tolerance > 0.0 else 0.0  # NaN and negative tolerances alike mean "none"
    weighted = canary_share * (1.0 + r)
    return weighted / (weighted + 1.0 - canary_share)


def conditional_log_evidences(
    canary_events: ArrayLike, primary_events: ArrayLike, canary_share: ArrayLike, tolerance: float,
) -> NDArray[np.float64]:
    """``conditional_log_evidence`` over arrays (broadcast together): one ufunc pass for many
    bounds or many simulated runs."""
    x = _counts(canary_events)
    y = _counts(primary_events)
    rho = np.asarray(canary_share, dtype=np.float64)
    r = tolerance if tolerance > 0.0 else 0.0
    x, y, rho = np.broadcast_arrays(x, y, rho)
    with np.errstate(invalid="ignore"):
        weighted = rho * (1.0 + r)
        q0 = weighted / (weighted + 1.0 - rho)
        active = (rho > 0.0) & (rho < 1.0) & (q0 < 1.0) & (x + y > 0.0)
    log_e = np.zeros(x.shape, dtype=np.float64)
    if active.any():
        log_e[active] = _log_evidence(x[active], x[active] + y[active], q0[active])
    return log_e


def conditional_log_evidence(
    canary_events: float, primary_events: float, canary_share: float, tolerance: float,
) -> float:
    """Log of the e-value that the canary holds more than its null share of ``canary_events +
    primary_events`` events (see the module docstring). 0 (no evidence) without events or when
    the share is outside (0, 1); negative, NaN or infinite counts count as 0."""
    x = _count(canary_events)
    y = _count(primary_events)
    q0 = null_share(canary_share, tolerance)
    if not q0 < 1.0 or x + y <= 0.0:  # also NaN: no usable share
        return 0.0
    return _log_evidence_one(x, x + y, q0)


#: The relative risks ``theta = p_c / p_p`` the joint error test averages over: log-evenly from
#: the tolerance to ten thousand times it (a canary failing every request against a primary at
#: 0.01%), equal weights. A fixed grid is a valid prior: the mixture of supermartingales stays
#: one, with no integration error to bound.
_THETA_SPAN = 1e4
_THETA_POINTS = 160
_LOG_THETAS = np.linspace(0.0, math.log(_THETA_SPAN), _THETA_POINTS + 1)[1:]


@dataclass(frozen=True)
class StepEvents:
    """One weight step's failures per version and the canary's share of its requests."""

    canary_events: float
    primary_events: float
    canary_share: float

    @classmethod
    def of(cls, canary_failures: float, primary_failures: float, canary_requests: float,
           primary_requests: float) -> StepEvents:
        """From a step's counts, the share taken from the requests both versions served."""
        n_c, n_p = _count(canary_requests), _count(primary_requests)
        share = n_c / (n_c + n_p) if n_c + n_p > 0.0 else 0.0
        return cls(_count(canary_failures), _count(primary_failures), share)


def joint_error_log_evidence(steps: Sequence[StepEvents], tolerance: float) -> float:
    """The error test over a whole run: one mixture over the canary's relative risk ``theta``
    shared by every step, instead of a product of per-step mixtures.

    With ``theta`` fixed, step ``s`` gives each event to the canary with probability
    ``q_s = rho_s theta / (rho_s theta + 1 - rho_s)``, so the likelihood ratio against the null's
    ``q0_s`` multiplies across steps into one supermartingale per ``theta >= 1 + r`` (the factor
    argument of the module docstring, step by step); averaging over the ``theta`` grid keeps it
    one. A per-step mixture pays for its prior in every step, which at low traffic (a failure or
    two per step) can cost more than the steps' evidence; here the prior is paid once per run."""
    r = tolerance if tolerance > 0.0 else 0.0
    log_ratio = np.zeros(_THETA_POINTS)
    for step in steps:
        x, y, rho = _count(step.canary_events), _count(step.primary_events), step.canary_share
        if x + y <= 0.0 or not 0.0 < rho < 1.0:
            continue
        odds = rho / (1.0 - rho)
        log_odds0 = math.log(odds * (1.0 + r))
        log_odds = log_odds0 + _LOG_THETAS
        # log q = log_odds - log(1 + odds), log(1 - q) = -log(1 + odds): both from log-odds.
        log_q, log_1mq = log_odds - np.logaddexp(0.0, log_odds), -np.logaddexp(0.0, log_odds)
        log_q0, log_1mq0 = log_odds0 - np.logaddexp(0.0, log_odds0), -np.logaddexp(0.0, log_odds0)
        log_ratio += x * (log_q - log_q0) + y * (log_1mq - log_1mq0)
    top = float(log_ratio.max())
    log_e = top + math.log(float(np.exp(log_ratio - top).mean()))
    return min(log_e, _LOG_E_CEILING)


def latency_log_evidence(canary: Histogram, primary: Histogram, tolerance: float) -> LatencyEvidence:
    """The latency test: at every finite bucket bound both histograms have, events are requests
    slower than it; the per-bound e-values are averaged. The share is the canary's share of the
    two histograms' totals. A bound without events in either version contributes ``E = 1``."""
    primary_counts = dict(zip(primary.bounds, primary.counts))
    common = [(bound, count) for bound, count in zip(canary.bounds, canary.counts)
              if math.isfinite(bound) and bound in primary_counts]
    if not common:
        return LatencyEvidence(log_e=0.0, worst_bound=None)
    canary_total = _count(canary.total)
    primary_total = _count(primary.total)
    q0 = null_share(canary_total / (canary_total + primary_total), tolerance) if canary_total > 0.0 else math.nan
    bounds = [bound for bound, _ in common]
    per_bound = np.zeros(len(bounds))
    if q0 < 1.0:  # also False for NaN: no usable share
        canary_slow = _counts(canary_total - np.array([count for _, count in common], dtype=np.float64))
        primary_slow = _counts(primary_total - np.array([primary_counts[b] for b in bounds], dtype=np.float64))
        events = canary_slow + primary_slow
        active = events > 0.0
        if active.any():
            per_bound[active] = _log_evidence(canary_slow[active], events[active], np.full(int(active.sum()), q0))
    worst = int(np.argmax(per_bound))
    # log(mean(exp(per_bound))), shifted by the largest term so nothing overflows.
    top = float(per_bound[worst])
    log_e = top + math.log(float(np.exp(per_bound - top).sum()) / len(bounds))
    return LatencyEvidence(log_e=log_e, worst_bound=bounds[worst])


def _count(value: float) -> float:
    """A count as the statistics take it: negative, NaN or infinite counts are no count."""
    return value if math.isfinite(value) and value > 0.0 else 0.0


def _counts(values: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    # Comparisons with NaN are quietly False: no warning to silence.
    return np.where(np.isfinite(array) & (array > 0.0), array, 0.0)


def _log_evidence(x: NDArray[np.float64], m: NDArray[np.float64], q0: NDArray[np.float64]) -> NDArray[np.float64]:
    """Log ``E`` for ``0 <= x <= m``, ``m > 0``, ``0 < q0 < 1`` (element-wise)."""
    a = x + 1.0
    b = m - x + 1.0
    # P(q > q0) under Beta(x + 1, m - x + 1); scipy has no stubs, so the types are restated.
    tail: NDArray[np.float64] = np.asarray(betaincc(a, b, q0), dtype=np.float64)
    log_1mq0 = np.log1p(-q0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_e: NDArray[np.float64] = np.asarray(betaln(a, b), dtype=np.float64) + np.log(tail) - log_1mq0 - x * np.log(q0) - (m - x) * log_1mq0
    for index in np.flatnonzero(~(tail > _TAIL_FLOOR)):  # also NaN
        log_e[index] = _log_evidence_far_below(float(x[index]), float(m[index]), float(q0[index]))
    floor = -np.log1p(m - x)  # E >= 1 / (m - x + 1), see the module docstring
    # fmax: a NaN (never expected) falls to the floor, which is still a valid e-value.
    return np.minimum(np.fmax(log_e, floor), _LOG_E_CEILING)


def _log_evidence_one(x: float, m: float, q0: float) -> float:
    """``_log_evidence`` for one count, in Python floats: a third of the array version's cost per
    call, which matters to the benchmark's millions of calls. The tests hold the two equal."""
    a = x + 1.0
    b = m - x + 1.0
    tail = float(betaincc(a, b, q0))
    floor = -math.log1p(m - x)
    if tail > _TAIL_FLOOR:
        log_1mq0 = math.log1p(-q0)
        log_e = float(betaln(a, b)) + math.log(tail) - log_1mq0 - x * math.log(q0) - (m - x) * log_1mq0
    else:  # also NaN
        log_e = _log_evidence_far_below(x, m, q0)
    if math.isnan(log_e):
        return floor
    return min(max(log_e, floor), _LOG_E_CEILING)


def _log_evidence_far_below(x: float, m: float, q0: float) -> float:
    """Log ``E`` where the canary's events are so far below ``q0 m`` that the beta tail underflows:
    ``E = q0 F / (m - x + 1)`` with ``F = sum_k prod_{j<k} (m + 2 + j) / (m - x + 2 + j) (1 - q0)``.
    The ratios fall towards ``1 - q0``, so once one is below 1 the remaining terms shrink at least
    geometrically. Cut short (a lower bound of ``E``) if it has not converged after
    ``_SERIES_MAX_CHUNKS`` rounds."""
    z = 1.0 - q0
    lower_bound = -math.log(m - x + 1.0)
    if (m + 2.0) / (m - x + 2.0) * z >= 1.0:
        return lower_bound  # not "far below" after all: never reached from _log_evidence
    total = 0.0
    term = 1.0  # the k-th term, before this chunk's first ratio
    start = 0
    for _ in range(_SERIES_MAX_CHUNKS):
        j = np.arange(start, start + _SERIES_CHUNK, dtype=np.float64)
        ratios = (m + 2.0 + j) / (m - x + 2.0 + j) * z
        terms = term * np.concatenate(([1.0], np.cumprod(ratios[:-1])))
        total += float(terms.sum())
        last_ratio = float(ratios[-1])
        term = float(terms[-1]) * last_ratio
        start += _SERIES_CHUNK
        if last_ratio < 1.0 and term / (1.0 - last_ratio) <= 1e-16 * total:
            break
    log_e = math.log(q0) + lower_bound + math.log(total)
    return log_e if math.isfinite(log_e) else lower_bound

