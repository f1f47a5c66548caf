"""Verdicts: a measured value against its bounds, and a tick's checks taken together."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from canary.domain.bounds import METRIC_INTERVAL
from canary.domain.spec import BUILTIN_SUCCESS_RATE, AnalysisSpec, MetricSpec, NoDataPolicy
from canary.domain.status import CheckKind, CheckResult, Verdict


#: The shortest query window asked for (the floor of ``metrics[].interval``): a window clipped to
#: a run only seconds old stays a range Prometheus and the Traffic Metrics API accept.
MIN_QUERY_WINDOW = METRIC_INTERVAL.floor


def query_window(metric: MetricSpec, analysis_interval: timedelta, run_started: datetime | None,
                 now: datetime) -> timedelta:
    """The range a metric check queries: the metric's interval (the analysis interval when unset),
    clipped to the time since the run started. Requests served by the same Deployment before the
    run belong to another revision (a previous release, or the version before the first one), and
    counting them would let its successes hide this revision's failures, or its failures sink a
    healthy one."""
    window = metric.interval or analysis_interval
    if run_started is None:
        return window
    return max(min(window, now - run_started), MIN_QUERY_WINDOW)


def evaluate_metric(
    metric: MetricSpec,
    *,
    value: float | None,
    source: str,
    now: datetime,
    samples: float | None = None,
    min_samples: int = 1,
    error: str | None = None,
    unavailable: str | None = None,
) -> CheckResult:
    """One metric check. No value, NaN, or too few samples is ``NoData``, never a pass.

    ``error``: the check could not be judged by a fault of its own (a refused query, a template,
    a credential): ``Error``. ``unavailable``: the provider did not answer (after retries):
    ``Unavailable``, which says nothing about the canary."""
    bounds = metric.threshold_range
    base = CheckResult(
        name=metric.name, kind=CheckKind.METRIC, source=source, verdict=Verdict.ERROR,
        time=now, min=bounds.min, max=bounds.max, samples=samples,
    )
    if error is not None:
        return base.with_verdict(Verdict.ERROR, error)
    if unavailable is not None:
        return base.with_verdict(Verdict.UNAVAILABLE, f"the metrics provider is unavailable: {unavailable}")
    if value is None or math.isnan(value):
        return base.with_verdict(Verdict.NO_DATA, "no data: the canary received no traffic in the window")
    if samples is not None and samples < min_samples:
        breach = guaranteed_breach(metric, value=value, samples=samples, min_samples=min_samples)
        if breach is not None:
            return base.with_verdict(Verdict.FAIL, breach, value=value)
        return base.with_verdict(
            Verdict.NO_DATA,
            f"no data: {samples:g} requests in the window, fewer than minSampleSize {min_samples}",
            value=value,
        )
    if bounds.min is not None and value < bounds.min:
        return base.with_verdict(Verdict.FAIL, f"{value:g} is below the minimum {bounds.min:g}", value=value)
    if bounds.max is not None and value > bounds.max:
        return base.with_verdict(Verdict.FAIL, f"{value:g} is above the maximum {bounds.max:g}", value=value)
    return base.with_verdict(Verdict.PASS, "within bounds", value=value)


def guaranteed_breach(metric: MetricSpec, *, value: float, samples: float, min_samples: int) -> str | None:
    """Why a success rate measured on fewer than ``min_samples`` requests already fails, or None.

    Waiting for more requests only helps if they could lift the rate: when the failures in the
    window keep it below ``min`` even if every request up to ``minSampleSize`` succeeds, no
    amount of traffic makes the check pass, and holding would only serve more failures. Only
    the builtin success rate is a known proportion of ``samples``; a template's value is not."""
    floor = metric.threshold_range.min
    if not metric.is_builtin or metric.name != BUILTIN_SUCCESS_RATE or floor is None:
        return None
    if samples <= 0 or not math.isfinite(value) or not math.isfinite(samples):
        return None
    failures = samples * (100.0 - value) / 100.0
    best = (min_samples - failures) / min_samples * 100.0
    # A rate exactly at the bound passes; the tolerance keeps float rounding of the counts
    # (Prometheus' increase() extrapolates) from turning that into a failure.
    if best >= floor or math.isclose(best, floor, rel_tol=1e-9, abs_tol=1e-9):
        return None
    return (f"{failures:.4g} failed requests among {samples:g} keep the success rate below the minimum {floor:g} "
            f"even if every request up to minSampleSize {min_samples} succeeds (at most {best:.4g})")


class TickOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    HOLD = "hold"  # no data under the hold policy: neither advance nor count a failure
    OUTAGE = "outage"  # a metrics provider unavailable: hold too; the canary was not measured


@dataclass(frozen=True)
class TickJudgement:
    """A tick's checks taken together, with the consecutive-hold counters it leaves in status."""

    outcome: TickOutcome
    consecutive_errors: int
    consecutive_no_data: int
    #: Set when the tick fails only because a hold outlasted its limit: says which limit.
    limit_reached: str = ""


def judge_tick(checks: Iterable[CheckResult], analysis: AnalysisSpec, *, consecutive_errors: int,
               consecutive_no_data: int) -> TickJudgement:
    """Fail, hold or pass, given the counters of the previous ticks.

    A provider outage (``Unavailable``) is no evidence against the canary, so it holds instead of
    counting; a hold is bounded, though, so that a dead provider or a service without traffic
    ends in the documented policy instead of waiting forever. The no-data counter grows on ticks
    with a ``NoData`` check and resets on a tick where every metric check had data; a tick of
    outage alone leaves it as it was (it says nothing about traffic)."""
    verdicts = {c.verdict for c in checks}
    outage = Verdict.UNAVAILABLE in verdicts
    no_data = Verdict.NO_DATA in verdicts
    errors = consecutive_errors + 1 if outage else 0
    quiet = consecutive_no_data + 1 if no_data else (consecutive_no_data if outage else 0)

    def judged(outcome: TickOutcome, limit_reached: str = "") -> TickJudgement:
        return TickJudgement(outcome, errors, quiet, limit_reached)

    if verdicts & {Verdict.FAIL, Verdict.ERROR}:
        return judged(TickOutcome.FAIL)
    if no_data and analysis.no_data_policy is NoDataPolicy.FAIL:
        return judged(TickOutcome.FAIL)
    if outage and errors > analysis.consecutive_error_limit:
        return judged(TickOutcome.FAIL, f"the metrics provider was unavailable {errors} ticks in a row, more than "
                                        f"consecutiveErrorLimit {analysis.consecutive_error_limit}")
    if no_data and quiet > analysis.consecutive_no_data_limit:
        return judged(TickOutcome.FAIL, f"no data {quiet} ticks in a row, more than consecutiveNoDataLimit "
                                        f"{analysis.consecutive_no_data_limit}")
    if outage:
        return judged(TickOutcome.OUTAGE)
    if no_data:
        return judged(TickOutcome.HOLD)
    return judged(TickOutcome.PASS)


def gate_open(checks: Iterable[CheckResult]) -> bool:
    """A gate opens when every one of its webhooks said yes (no webhooks: open)."""
    return all(c.verdict is Verdict.PASS for c in checks)


def summarize_failures(checks: Iterable[CheckResult]) -> str:
    parts = [f"{c.name}: {c.message}" for c in checks if c.verdict is not Verdict.PASS]
    return "; ".join(parts)
