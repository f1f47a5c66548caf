"""Verdicts: a measured value against its bounds, and a tick's checks taken together."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

from canary.domain.bounds import METRIC_INTERVAL
from canary.domain.spec import MetricSpec, NoDataPolicy
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
) -> CheckResult:
    """One metric check. No value, NaN, or too few samples is ``NoData``, never a pass."""
    bounds = metric.threshold_range
    base = CheckResult(
        name=metric.name, kind=CheckKind.METRIC, source=source, verdict=Verdict.ERROR,
        time=now, min=bounds.min, max=bounds.max, samples=samples,
    )
    if error is not None:
        return base.with_verdict(Verdict.ERROR, error)
    if value is None or math.isnan(value):
        return base.with_verdict(Verdict.NO_DATA, "no data: the canary received no traffic in the window")
    if samples is not None and samples < min_samples:
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


class TickOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    HOLD = "hold"  # no data under the hold policy: neither advance nor count a failure


def tick_outcome(checks: Iterable[CheckResult], policy: NoDataPolicy) -> TickOutcome:
    verdicts = {c.verdict for c in checks}
    if verdicts & {Verdict.FAIL, Verdict.ERROR}:
        return TickOutcome.FAIL
    if Verdict.NO_DATA in verdicts:
        return TickOutcome.FAIL if policy is NoDataPolicy.FAIL else TickOutcome.HOLD
    return TickOutcome.PASS


def gate_open(checks: Iterable[CheckResult]) -> bool:
    """A gate opens when every one of its webhooks said yes (no webhooks: open)."""
    return all(c.verdict is Verdict.PASS for c in checks)


def summarize_failures(checks: Iterable[CheckResult]) -> str:
    parts = [f"{c.name}: {c.message}" for c in checks if c.verdict is not Verdict.PASS]
    return "; ".join(parts)
