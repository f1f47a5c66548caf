"""The judge's statistics: exact values against numeric integration, calibration under the null
while the evidence is looked at after every small batch (the way the controller looks), and the
power the design promises on gross regressions. Every simulation is seeded numpy; none is timed."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.integrate import quad
from scipy.special import betaincc

from canary.domain.judge_math import (
    StepEvents,
    joint_error_log_evidence,
    LatencyEvidence,
    conditional_log_evidence,
    conditional_log_evidences,
    latency_log_evidence,
    null_share,
)
from canary.domain.samples import Histogram

#: Linkerd's response_latency_ms buckets.
LINKERD_BOUNDS = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 200.0, 300.0, 400.0,
                  500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0,
                  50000.0, math.inf)

ALPHA = 0.05
#: 2,000 runs at a true rate of 5% have a standard error of 0.5 points: 6% is two of them.
ALLOWED = 0.06
RUNS = 2000


def integrated_log_evidence(x: float, m: float, q0: float) -> float:
    """The mixture e-value straight from its definition, by quadrature: the likelihood ratio is
    formed in log space relative to q0, and the interval is cut where the integrand is gone."""
    def ratio(q: float) -> float:
        return math.exp(x * math.log(q / q0) + (m - x) * (math.log1p(-q) - math.log1p(-q0)))
    upper = 1.0
    peak = x / m
    if peak < q0:  # the ratio falls from 1 at q0 at a rate of about m (q0 - peak) / (q0 (1 - q0))
        upper = min(1.0, q0 + 80.0 * q0 * (1.0 - q0) / (m * (q0 - peak)))
    points = [peak] if q0 < peak < upper else None
    value, _ = quad(ratio, q0, upper, points=points, limit=500, epsabs=0.0, epsrel=1e-11)
    return math.log(value / (1.0 - q0))


# --- exact values -------------------------------------------------------------------------------

def test_null_share_is_the_canary_share_of_events_at_the_tolerated_ratio() -> None:
    # rho = 0.1, r = 0.2: 0.1 * 1.2 / (0.12 + 0.9)
    assert null_share(0.1, 0.2) == pytest.approx(0.12 / 1.02, rel=1e-15)
    assert null_share(0.3, 0.0) == pytest.approx(0.3, rel=1e-15)
    assert math.isnan(null_share(0.0, 0.2)) and math.isnan(null_share(1.0, 0.2))


@pytest.mark.parametrize("m", [1.0, 7.0, 250.0, 1e6])
def test_no_canary_event_is_worth_one_over_m_plus_one(m: float) -> None:
    # With x = 0 the integral is (1 - q0)^(m+1) / (m + 1) over (1 - q0)^(m+1).
    assert conditional_log_evidence(0.0, m, 0.1, 0.2) == pytest.approx(-math.log(m + 1.0), abs=1e-9)


@pytest.mark.parametrize("m", [1.0, 3.0, 12.0, 60.0])
def test_every_event_on_the_canary_is_the_closed_form(m: float) -> None:
    # x = m: integral of (q / q0)^m over (q0, 1) = (1 - q0^(m+1)) / ((m + 1) q0^m)
    q0 = null_share(0.1, 0.2)
    expected = math.log((1.0 - q0 ** (m + 1.0)) / ((m + 1.0) * q0 ** m * (1.0 - q0)))
    assert conditional_log_evidence(m, 0.0, 0.1, 0.2) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("x", "y", "share", "tolerance"), [
    (3.0, 0.0, 0.1, 0.2),
    (1.0, 49.0, 0.1, 0.0),
    (7.0, 33.0, 0.1, 0.2),
    (2.5, 7.8, 0.2, 0.0),        # Prometheus's increase() extrapolates: real counts
    (0.4, 0.3, 0.5, 0.5),
    (30.0, 970.0, 0.1, 0.0),
    (120.0, 380.0, 0.3, 0.2),    # far above q0: strong evidence
    (45.5, 190.25, 0.05, 1.0),
    (400.0, 600.0, 0.5, 0.2),
])
def test_matches_numeric_integration(x: float, y: float, share: float, tolerance: float) -> None:
    expected = integrated_log_evidence(x, x + y, null_share(share, tolerance))
    assert conditional_log_evidence(x, y, share, tolerance) == pytest.approx(expected, rel=1e-8, abs=1e-8)


@pytest.mark.parametrize(("x", "m", "q0"), [
    (1000.0, 1e6, 0.1),
    (3.5, 20000.0, 0.2),
    (2.0e4, 4.0e5, 0.12),
    (1.0e5, 1.2e6, 0.12),        # a long step with the canary a little better than q0
])
def test_far_below_the_null_share_the_tail_underflows_and_e_stays_exact(x: float, m: float, q0: float) -> None:
    assert betaincc(x + 1.0, m - x + 1.0, q0) < 1e-250  # the case the series takes over
    share = q0  # with no tolerance, q0 is the share itself
    expected = integrated_log_evidence(x, m, q0)
    got = conditional_log_evidence(x, m - x, share, 0.0)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert got >= -math.log(m - x + 1.0)  # the floor the docstring proves


def test_the_array_form_equals_the_scalar_form() -> None:
    rng = np.random.default_rng(11)
    m = rng.gamma(0.5, 2000.0, 400)
    x = m * rng.uniform(0.0, 1.0, 400) ** 2
    share = rng.uniform(0.01, 0.6, 400)
    many = conditional_log_evidences(x, m - x, share, 0.3)
    one = [conditional_log_evidence(float(a), float(b), float(s), 0.3) for a, b, s in zip(x, m - x, share)]
    np.testing.assert_allclose(many, one, rtol=1e-12, atol=1e-12)


def test_more_canary_events_is_more_evidence() -> None:
    evidence = [conditional_log_evidence(float(x), 100.0 - x, 0.1, 0.2) for x in range(0, 101)]
    assert all(b > a for a, b in zip(evidence, evidence[1:]))


@pytest.mark.parametrize(("x", "y", "share", "tolerance"), [
    (math.nan, 5.0, 0.1, 0.2), (-3.0, 5.0, 0.1, 0.2), (math.inf, 5.0, 0.1, 0.2), (-math.inf, 5.0, 0.1, 0.2),
])
def test_a_bad_canary_count_is_no_count(x: float, y: float, share: float, tolerance: float) -> None:
    assert conditional_log_evidence(x, y, share, tolerance) == conditional_log_evidence(0.0, y, share, tolerance)


@pytest.mark.parametrize("share", [0.0, 1.0, -0.2, 1.5, math.nan, math.inf])
def test_a_share_outside_zero_one_is_no_evidence(share: float) -> None:
    assert conditional_log_evidence(40.0, 1.0, share, 0.2) == 0.0


@pytest.mark.parametrize("tolerance", [math.nan, -0.5, -math.inf])
def test_a_missing_or_negative_tolerance_is_none(tolerance: float) -> None:
    assert conditional_log_evidence(9.0, 20.0, 0.1, tolerance) == conditional_log_evidence(9.0, 20.0, 0.1, 0.0)


@pytest.mark.parametrize("tolerance", [math.inf, 1e300])
def test_a_boundless_tolerance_is_no_evidence(tolerance: float) -> None:
    # q0 reaches 1: the null allows any share, nothing can count against it.
    assert conditional_log_evidence(29.0, 0.0, 0.1, tolerance) == 0.0
    assert conditional_log_evidences([29.0], [0.0], [0.1], tolerance).tolist() == [0.0]


def test_no_events_is_no_evidence() -> None:
    assert conditional_log_evidence(0.0, 0.0, 0.1, 0.2) == 0.0
    assert conditional_log_evidence(-1.0, math.nan, 0.1, 0.2) == 0.0


def test_odd_floats_never_give_nan_or_raise() -> None:
    odd = [0.0, 5e-324, 1e-300, 1e-12, 0.3, 1.0, 2.5, 1e3, 1e9, 1e15, 1e300, math.inf, -1.0, math.nan]
    shares = [5e-324, 1e-300, 1e-9, 0.1, 0.5, 1.0 - 1e-16, 0.999999]
    for x in odd:
        for y in odd:
            for share in shares:
                value = conditional_log_evidence(x, y, share, 0.2)
                assert math.isfinite(value), (x, y, share, value)


# --- error and latency tests over samples ---------------------------------------------------------

def test_a_step_takes_the_share_from_requests() -> None:
    assert StepEvents.of(9.0, 6.0, 100.0, 300.0) == StepEvents(9.0, 6.0, 0.25)
    assert StepEvents.of(1.0, math.nan, 0.0, 0.0) == StepEvents(1.0, 0.0, 0.0)
    # One step of the joint test is the conditional test with a log-uniform prior on the ratio:
    # no events, no evidence; more canary events, more evidence.
    assert joint_error_log_evidence([StepEvents.of(0.0, 0.0, 100.0, 300.0)], 0.2) == pytest.approx(0.0)
    assert joint_error_log_evidence([StepEvents.of(9.0, 6.0, 100.0, 300.0)], 0.2) > \
        joint_error_log_evidence([StepEvents.of(3.0, 6.0, 100.0, 300.0)], 0.2)


def histogram(bounds: tuple[float, ...], per_bucket: NDArray[np.float64] | list[float]) -> Histogram:
    """A cumulative histogram from per-bucket counts, as Prometheus would expose it."""
    return Histogram(bounds, tuple(np.cumsum(per_bucket, dtype=np.float64).tolist()))


def slower(histogram: Histogram, bound: float) -> float:
    """Requests slower than ``bound``, computed here independently of the code under test."""
    return histogram.total - histogram.counts[histogram.bounds.index(bound)]


def test_latency_evidence_is_the_mean_of_the_per_bound_e_values() -> None:
    bounds = (10.0, 50.0, 100.0, math.inf)
    canary = histogram(bounds, [2.0, 3.0, 10.0, 5.0])      # 20 requests
    primary = histogram(bounds, [60.0, 80.0, 30.0, 10.0])  # 180 requests
    per_bound = {b: conditional_log_evidence(slower(canary, b), slower(primary, b), 0.1, 0.5)
                 for b in bounds[:-1]}
    evidence = latency_log_evidence(canary, primary, 0.5)
    assert evidence.log_e == pytest.approx(math.log(sum(math.exp(v) for v in per_bound.values()) / 3.0), rel=1e-12)
    assert evidence.worst_bound == max(per_bound, key=lambda b: per_bound[b])


def test_latency_bounds_without_events_count_as_e_one() -> None:
    bounds = (10.0, 50.0, 100.0, math.inf)
    canary = histogram(bounds, [20.0, 0.0, 0.0, 0.0])   # every request under 10 ms: no events
    primary = histogram(bounds, [180.0, 0.0, 0.0, 0.0])
    assert latency_log_evidence(canary, primary, 0.5) == LatencyEvidence(log_e=0.0, worst_bound=10.0)
    slow_canary = histogram(bounds, [10.0, 10.0, 0.0, 0.0])  # only the 10 ms bound sees events
    only = conditional_log_evidence(10.0, 0.0, 0.1, 0.5)
    assert latency_log_evidence(slow_canary, primary, 0.5).log_e == pytest.approx(math.log((math.exp(only) + 2.0) / 3.0))


def test_latency_uses_the_finite_bounds_both_histograms_have() -> None:
    canary = histogram((10.0, 25.0, 50.0, math.inf), [5.0, 5.0, 5.0, 5.0])
    primary = histogram((10.0, 50.0, 75.0, math.inf), [45.0, 45.0, 45.0, 45.0])
    common = [conditional_log_evidence(slower(canary, b), slower(primary, b), 0.1, 0.5) for b in (10.0, 50.0)]
    evidence = latency_log_evidence(canary, primary, 0.5)
    assert evidence.log_e == pytest.approx(math.log(sum(math.exp(v) for v in common) / 2.0), rel=1e-12)
    assert evidence.worst_bound in (10.0, 50.0)


def test_latency_without_a_common_finite_bound_is_no_evidence() -> None:
    canary = histogram((10.0, math.inf), [5.0, 5.0])
    primary = histogram((20.0, math.inf), [5.0, 5.0])
    assert latency_log_evidence(canary, primary, 0.5) == LatencyEvidence(log_e=0.0, worst_bound=None)
    assert latency_log_evidence(Histogram((), ()), Histogram((), ()), 0.5) == LatencyEvidence(0.0, None)




# --- calibration: looked at after every batch, the false-alarm rate stays under alpha -------------

RateCurve = Callable[[int], NDArray[np.float64]]
#: A release's steps: the canary's share of requests at each weight, restarting the evidence each.
RAMP = (0.05, 0.1, 0.3, 0.5)


def false_alarm_rate(
    seed: int, *, base_rate: float, canary_ratio: float, tolerance: float, shares: tuple[float, ...] = RAMP,
    looks: int = 20, events_per_look: float = 4.0, bad_hour: float = 1.0, judged_tolerance: float | None = None,
) -> float:
    """The fraction of simulated releases whose running evidence (the finished steps' log E plus
    the current step's, recomputed from cumulative counts at each look) ever reaches 1/alpha.
    Each look adds a Poisson batch of requests split at the step's share; each request fails with
    its version's rate. ``bad_hour`` multiplies both versions' rates in the middle third of the
    second step. The share is plugged in from the counted requests, as StepEvents.of does."""
    rng = np.random.default_rng(seed)
    batch = max(20.0, events_per_look / base_rate)
    carried = np.zeros(RUNS)
    crossed = np.zeros(RUNS, dtype=bool)
    judged = tolerance if judged_tolerance is None else judged_tolerance
    for step, share in enumerate(shares):
        factor = np.ones(looks)
        if step == 1:
            factor[looks // 3: 2 * looks // 3] = bad_hour
        primary_rate = np.minimum(base_rate * factor, 1.0)
        canary_rate = np.minimum(primary_rate * canary_ratio, 1.0)
        requests = rng.poisson(batch, (RUNS, looks))
        canary_requests = rng.binomial(requests, share)
        canary_failures = rng.binomial(canary_requests, canary_rate)
        primary_failures = rng.binomial(requests - canary_requests, primary_rate)
        seen = np.cumsum(requests, axis=1)
        plugged_share = np.cumsum(canary_requests, axis=1) / np.maximum(seen, 1)
        log_e = conditional_log_evidences(np.cumsum(canary_failures, axis=1), np.cumsum(primary_failures, axis=1),
                                          plugged_share, judged)
        crossed |= (carried[:, None] + log_e >= math.log(1.0 / ALPHA)).any(axis=1)
        carried += log_e[:, -1]
    return float(crossed.mean())


RATES = [pytest.param(0.001, id="0.1%"), pytest.param(0.01, id="1%"), pytest.param(0.3, id="30%")]


@pytest.mark.parametrize("base_rate", RATES)
def test_calibrated_with_equal_rates_over_a_release(base_rate: float) -> None:
    assert false_alarm_rate(101, base_rate=base_rate, canary_ratio=1.0, tolerance=0.0) <= ALLOWED


@pytest.mark.parametrize("base_rate", RATES)
@pytest.mark.parametrize("share", [0.05, 0.1, 0.3, 0.5])
def test_calibrated_at_each_share_over_a_long_step(base_rate: float, share: float) -> None:
    rate = false_alarm_rate(202, base_rate=base_rate, canary_ratio=1.0, tolerance=0.0, shares=(share,), looks=60)
    assert rate <= ALLOWED


@pytest.mark.parametrize("base_rate", RATES)
def test_calibrated_through_a_bad_hour_for_both_versions(base_rate: float) -> None:
    surge = min(10.0, 0.9 / base_rate)  # both versions fail far more for a while
    assert false_alarm_rate(303, base_rate=base_rate, canary_ratio=1.0, tolerance=0.0, bad_hour=surge) <= ALLOWED


@pytest.mark.parametrize("base_rate", RATES)
def test_calibrated_at_the_tolerance_boundary(base_rate: float) -> None:
    # The canary fails exactly (1 + r) times as often as the primary: the least favourable null.
    assert false_alarm_rate(404, base_rate=base_rate, canary_ratio=1.2, tolerance=0.2) <= ALLOWED


def test_the_simulation_sees_a_wrong_null() -> None:
    # The same boundary releases judged as if no degradation were tolerated: now the canary is
    # really worse than the null says, and the harness must show more alarms than ALLOWED,
    # or the calibration tests above could not fail.
    rate = false_alarm_rate(404, base_rate=0.01, canary_ratio=1.2, tolerance=0.2, judged_tolerance=0.0,
                            events_per_look=30.0)
    assert rate > ALLOWED


def bucket_counts(latencies_ms: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-bucket counts in Linkerd's buckets (``le`` semantics: a request of exactly 10 ms is in
    the 10 ms bucket)."""
    finite = np.array(LINKERD_BOUNDS[:-1])
    return np.bincount(np.searchsorted(finite, latencies_ms, side="left"),
                       minlength=len(LINKERD_BOUNDS)).astype(np.float64)


def latency_false_alarm_rate(seed: int, *, slow_hour: float) -> float:
    """The fraction of releases whose latency evidence ever reaches 1/alpha when both versions
    have the same latency (median 50 ms, p99 ~ 200 ms, in Linkerd's buckets): two steps at 10%
    and 50%, eight looks of ~30 requests each, through latency_log_evidence itself. In the second
    step a slow hour multiplies everyone's latency by ``slow_hour`` for three looks."""
    rng = np.random.default_rng(seed)
    crossed = 0
    for _ in range(RUNS):
        carried = 0.0
        alarmed = False
        for step, share in enumerate((0.1, 0.5)):
            canary_buckets = np.zeros(len(LINKERD_BOUNDS))
            primary_buckets = np.zeros(len(LINKERD_BOUNDS))
            log_e = 0.0
            for look in range(8):
                slow = slow_hour if step == 1 and 3 <= look < 6 else 1.0
                requests = int(rng.poisson(30.0))
                to_canary = int(rng.binomial(requests, share))
                canary_buckets += bucket_counts(slow * rng.lognormal(math.log(50.0), 0.6, to_canary))
                primary_buckets += bucket_counts(slow * rng.lognormal(math.log(50.0), 0.6, requests - to_canary))
                log_e = latency_log_evidence(histogram(LINKERD_BOUNDS, canary_buckets),
                                             histogram(LINKERD_BOUNDS, primary_buckets), 0.0).log_e
                alarmed |= carried + log_e >= math.log(1.0 / ALPHA)
            carried += log_e
        crossed += alarmed
    return crossed / RUNS


def test_latency_calibrated_over_a_release_with_a_slow_hour() -> None:
    assert latency_false_alarm_rate(505, slow_hour=3.0) <= ALLOWED


# --- power: gross regressions are caught fast ---------------------------------------------------

def test_half_failing_canary_crosses_after_a_handful_of_its_failures() -> None:
    # 50% errors against the primary's 0.1%, 10% of traffic, 10 requests per look, alpha 0.01.
    rng = np.random.default_rng(606)
    failures_at_rejection = []
    for _ in range(300):
        canary = primary = np.zeros(2)  # requests, failures
        for _ in range(500):
            requests = int(rng.poisson(10.0))
            to_canary = int(rng.binomial(requests, 0.1))
            canary = canary + (to_canary, rng.binomial(to_canary, 0.5))
            primary = primary + (requests - to_canary, rng.binomial(requests - to_canary, 0.001))
            log_e = joint_error_log_evidence([StepEvents.of(canary[1], primary[1], canary[0], primary[0])], 0.2)
            if log_e >= math.log(1 / 0.01):
                failures_at_rejection.append(canary[1])
                break
    assert len(failures_at_rejection) == 300
    assert max(failures_at_rejection) <= 8
    assert float(np.median(failures_at_rejection)) <= 4


def test_twice_slower_canary_is_caught_within_a_few_hundred_requests() -> None:
    # Every canary request takes twice as long (median 50 -> 100 ms); Linkerd's buckets; 10% of
    # traffic, 20 requests per look, tolerance 0.5, alpha 0.01 shared with the error test.
    rng = np.random.default_rng(707)
    requests_at_rejection = []
    for _ in range(100):
        canary_buckets = np.zeros(len(LINKERD_BOUNDS))
        primary_buckets = np.zeros(len(LINKERD_BOUNDS))
        for _ in range(300):
            requests = int(rng.poisson(20.0))
            to_canary = int(rng.binomial(requests, 0.1))
            canary_buckets += bucket_counts(2.0 * rng.lognormal(math.log(50.0), 0.6, to_canary))
            primary_buckets += bucket_counts(rng.lognormal(math.log(50.0), 0.6, requests - to_canary))
            evidence = latency_log_evidence(histogram(LINKERD_BOUNDS, canary_buckets),
                                            histogram(LINKERD_BOUNDS, primary_buckets), 0.5)
            if evidence.log_e >= math.log(2 / 0.01):
                requests_at_rejection.append(canary_buckets.sum())
                assert evidence.worst_bound is not None and 50.0 <= evidence.worst_bound <= 300.0
                break
    assert len(requests_at_rejection) == 100
    assert max(requests_at_rejection) <= 300


# --- the joint error test: one mixture over the whole run ----------------------------------------


def joint_false_alarm_rate(seed: int, *, base_rate: float, canary_ratio: float, tolerance: float,
                           looks: int = 10, bad_hour: float = 1.0) -> float:
    """As ``false_alarm_rate``, for ``joint_error_log_evidence``: at each look, the finished
    steps' counts and the current step's cumulative ones go into one mixture."""
    rng = np.random.default_rng(seed)
    batch = max(20.0, 4.0 / base_rate)
    crossed = 0
    for _ in range(RUNS):
        finished: list[StepEvents] = []
        alarm = False
        for step, share in enumerate(RAMP):
            factor = np.ones(looks)
            if step == 1:
                factor[looks // 3: 2 * looks // 3] = bad_hour
            primary_rate = np.minimum(base_rate * factor, 1.0)
            canary_rate = np.minimum(primary_rate * canary_ratio, 1.0)
            requests = rng.poisson(batch, looks)
            canary_requests = rng.binomial(requests, share)
            canary_failures = np.cumsum(rng.binomial(canary_requests, canary_rate))
            primary_failures = np.cumsum(rng.binomial(requests - canary_requests, primary_rate))
            plugged = np.cumsum(canary_requests) / np.maximum(np.cumsum(requests), 1)
            current = StepEvents(0.0, 0.0, 0.0)
            for look in range(looks):
                current = StepEvents(float(canary_failures[look]), float(primary_failures[look]), float(plugged[look]))
                if not alarm and joint_error_log_evidence([*finished, current], tolerance) >= math.log(1 / ALPHA):
                    alarm = True
            finished.append(current)
        crossed += alarm
    return crossed / RUNS


@pytest.mark.parametrize("base_rate", [pytest.param(0.001, id="0.1%"), pytest.param(0.05, id="5%")])
def test_joint_error_test_is_calibrated_over_a_release(base_rate: float) -> None:
    assert joint_false_alarm_rate(505, base_rate=base_rate, canary_ratio=1.0, tolerance=0.0) <= ALLOWED
    assert joint_false_alarm_rate(606, base_rate=base_rate, canary_ratio=1.2, tolerance=0.2) <= ALLOWED
    surge = min(10.0, 0.9 / base_rate)
    assert joint_false_alarm_rate(707, base_rate=base_rate, canary_ratio=1.0, tolerance=0.0,
                                  bad_hour=surge) <= ALLOWED


def test_the_joint_harness_sees_a_wrong_null() -> None:
    # A canary 3x worse judged with no tolerance: the harness must see alarms far above alpha.
    assert joint_false_alarm_rate(808, base_rate=0.01, canary_ratio=3.0, tolerance=0.0) > 0.5


def test_the_joint_test_pays_its_prior_once() -> None:
    # Four steps that each gave one failure to the canary alone: per-step mixtures multiply four
    # priors' costs; the joint mixture pays one, so it holds more evidence.
    steps = [StepEvents(1.0, 0.0, share) for share in RAMP]
    per_step = sum(conditional_log_evidence(1.0, 0.0, share, 0.0) for share in RAMP)
    assert joint_error_log_evidence(steps, 0.0) > per_step
    assert joint_error_log_evidence([], 0.0) == pytest.approx(0.0)
    assert joint_error_log_evidence([StepEvents(math.nan, -1.0, 0.5), StepEvents(3.0, 0.0, 1.5)], 0.0) == \
        pytest.approx(0.0)
