"""The judge's verdicts: the canary against the primary, as checks users read in status. Pure.

One look measures both versions over the current step (since the canary weight last moved).
Each enabled test turns the counts into the step's log-evidence (:mod:`canary.domain.judge_math`),
adds what the run's earlier steps carried (``status.judge.carried``), and rejects the canary when
the total reaches ``JudgeSpec.evidence_bound``. docs/analysis.md, "The judge", says why this bound holds
however often the judge looks.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

from canary.domain.bounds import METRIC_INTERVAL
from canary.domain.judge_spec import JudgeSpec
from canary.domain.samples import ArmSample, Comparison
from canary.domain.status import CheckKind, CheckResult, JudgeState, Verdict

ERROR_RATE = "errorRate"
LATENCY = "latency"
CHECK_PREFIX = "judge/"
#: exp() of anything beyond this overflows; far past every rejection bound (log(2/0.0001) < 10).
_LOG_CAP = 700.0
_LATENCY_QUANTILE = 0.99


def check_name(test: str) -> str:
    return f"{CHECK_PREFIX}{test}"


def enabled_tests(judge: JudgeSpec) -> tuple[str, ...]:
    return tuple(t for t, on in ((ERROR_RATE, judge.error_rate), (LATENCY, judge.latency)) if on is not None)


def step_window(state: JudgeState, run_started: datetime | None, now: datetime) -> timedelta:
    """What a look measures: the time since the weight last moved (the run's start for the first
    step), within a metric check's range. Under 1 s a range holds no sample; a step held longer
    than a day is compared over its last day, the longest window Prometheus and the Traffic
    Metrics API are asked for."""
    started = state.step_started or run_started or now
    return min(max(now - started, METRIC_INTERVAL.floor), METRIC_INTERVAL.ceiling)


def evaluate(judge: JudgeSpec, comparison: Comparison, state: JudgeState, now: datetime) -> tuple[CheckResult, ...]:
    """One look: a check per enabled test."""
    checks = []
    if judge.error_rate is not None:
        checks.append(_error_rate(judge, comparison, state, now))
    if judge.latency is not None:
        checks.append(_latency(judge, comparison, state, now))
    return tuple(checks)


def unmeasured(judge: JudgeSpec, verdict: Verdict, message: str, now: datetime, source: str = "") -> tuple[CheckResult, ...]:
    """Every enabled test with the same verdict, when the measurement itself failed."""
    return tuple(CheckResult(name=check_name(t), kind=CheckKind.JUDGE, source=source, verdict=verdict, time=now,
                             message=message, evidence_bound=judge.evidence_bound)
                 for t in enabled_tests(judge))


def step_log_evidence(check: CheckResult, state: JudgeState) -> float | None:
    """The log-evidence of the current step alone, recovered from a judge check; None without one."""
    if check.kind is not CheckKind.JUDGE or check.evidence is None or check.evidence <= 0:
        return None
    test = check.name.removeprefix(CHECK_PREFIX)
    return math.log(check.evidence) - state.carried.get(test, 0.0)


def carry(checks: tuple[CheckResult, ...], state: JudgeState, now: datetime) -> JudgeState:
    """The weight moves: the step's evidence joins what the run carries, and a new step begins.
    The latency test carries its step's log-evidence; the error test its step's counts."""
    carried = dict(state.carried)
    error_steps = state.error_steps
    for check in checks:
        if check.name == check_name(ERROR_RATE):
            step_events = _step_events(check)
            if step_events is not None:
                error_steps += (step_events,)
            continue
        step = step_log_evidence(check, state)
        if step is not None:
            test = check.name.removeprefix(CHECK_PREFIX)
            carried[test] = carried.get(test, 0.0) + step
    return JudgeState(step_started=now, last_look=state.last_look, carried=carried, error_steps=error_steps)


def _step_events(check: CheckResult) -> tuple[float, float, float, float] | None:
    """The error check's step counts, back from the numbers it shows: rates times requests."""
    n_c, n_p = check.samples or 0.0, check.primary_samples or 0.0
    if n_c + n_p <= 0:
        return None
    return ((check.value or 0.0) * n_c / 100.0, (check.primary_value or 0.0) * n_p / 100.0, n_c, n_p)


def _run_rates(state: JudgeState, canary: ArmSample, primary: ArmSample) -> tuple[float, float]:
    """Both versions' error rates (percent) over the run: the finished steps and this one."""
    steps = [*state.error_steps, (canary.failures, primary.failures, canary.requests, primary.requests)]
    totals = [sum(max(step[i], 0.0) for step in steps) for i in range(4)]
    return (totals[0] / totals[2] * 100.0 if totals[2] > 0 else 0.0,
            totals[1] / totals[3] * 100.0 if totals[3] > 0 else 0.0)


def _base(judge: JudgeSpec, test: str, comparison: Comparison, now: datetime) -> CheckResult:
    return CheckResult(
        name=check_name(test), kind=CheckKind.JUDGE, source=comparison.source, verdict=Verdict.PASS, time=now,
        samples=comparison.canary.requests, primary_samples=comparison.primary.requests,
        evidence_bound=judge.evidence_bound,
    )


def _total(test: str, step_log_e: float, state: JudgeState) -> float:
    return max(min(state.carried.get(test, 0.0) + step_log_e, _LOG_CAP), -_LOG_CAP)


def _no_canary_traffic(check: CheckResult, comparison: Comparison) -> CheckResult | None:
    if comparison.canary.requests > 0:
        return None
    return check.with_verdict(Verdict.NO_DATA, "no data: the canary served no requests in this step")


def _error_rate(judge: JudgeSpec, comparison: Comparison, state: JudgeState, now: datetime) -> CheckResult:
    settings = judge.error_rate
    assert settings is not None
    canary, primary = comparison.canary, comparison.primary
    base = _base(judge, ERROR_RATE, comparison, now)
    quiet = _no_canary_traffic(base, comparison)
    if quiet is not None:
        return quiet
    # Imported here, not at the top: judge_math needs numpy and scipy, about 30 MiB of the
    # controller's memory, which only a controller with a Canary that uses the judge should pay.
    from canary.domain.judge_math import StepEvents, joint_error_log_evidence

    steps = [StepEvents.of(*step) for step in state.error_steps]
    steps.append(StepEvents.of(canary.failures, primary.failures, canary.requests, primary.requests))
    total = max(min(joint_error_log_evidence(steps, settings.tolerance), _LOG_CAP), -_LOG_CAP)
    check = replace(base, primary_value=primary.error_rate, evidence=math.exp(total))
    canary_rate = canary.error_rate or 0.0
    primary_rate = primary.error_rate or 0.0
    rates = f"the canary failed {canary_rate:.3g}% of {canary.requests:.0f} requests, the primary {primary_rate:.3g}% " \
            f"of {primary.requests:.0f}"
    # The guard reads the whole run, as the evidence does: a step without a failure says little.
    run_canary, run_primary = _run_rates(state, canary, primary)
    if total < math.log(judge.evidence_bound):
        return check.with_verdict(Verdict.PASS, f"{rates}: evidence {math.exp(total):.3g} of "
                                                f"{check.evidence_bound:.3g} needed", value=canary.error_rate)
    if run_canary - run_primary < settings.min_increase:
        return check.with_verdict(Verdict.PASS, f"{rates}: the canary is worse, by less than minIncrease "
                                                f"{settings.min_increase:g} points over the run "
                                                f"({run_canary:.3g}% against {run_primary:.3g}%)", value=canary.error_rate)
    return check.with_verdict(Verdict.FAIL, f"{rates}: evidence {math.exp(total):.3g} reached "
                                            f"{check.evidence_bound:.3g} (alpha {judge.alpha:g})", value=canary.error_rate)


def _latency(judge: JudgeSpec, comparison: Comparison, state: JudgeState, now: datetime) -> CheckResult:
    settings = judge.latency
    assert settings is not None
    base = _base(judge, LATENCY, comparison, now)
    canary, primary = comparison.canary.latency, comparison.primary.latency
    if canary is None or primary is None:
        return base.with_verdict(Verdict.ERROR, "the metrics source gives no latency histogram (the SMI Traffic "
                                                "Metrics API has none): judge errorRate only, or use Prometheus")
    base = replace(base, samples=canary.total, primary_samples=primary.total)
    if canary.total <= 0:
        return base.with_verdict(Verdict.NO_DATA, "no data: the canary served no requests in this step")
    from canary.domain.judge_math import latency_log_evidence  # numpy and scipy: see _error_rate

    found = latency_log_evidence(canary, primary, settings.tolerance)
    total = _total(LATENCY, found.log_e, state)
    p99_canary, p99_primary = canary.quantile(_LATENCY_QUANTILE), primary.quantile(_LATENCY_QUANTILE)
    check = replace(base, primary_value=p99_primary, evidence=math.exp(total))
    shown = f"p99 {_ms(p99_canary)} against the primary's {_ms(p99_primary)}"
    if total < math.log(judge.evidence_bound):
        return check.with_verdict(Verdict.PASS, f"{shown}: evidence {math.exp(total):.3g} of "
                                                f"{check.evidence_bound:.3g} needed", value=p99_canary)
    where = f", most of it above {found.worst_bound:g}ms" if found.worst_bound is not None else ""
    return check.with_verdict(Verdict.FAIL, f"{shown}: the canary is slower; evidence {math.exp(total):.3g} "
                                            f"reached {check.evidence_bound:.3g} (alpha {judge.alpha:g}){where}",
                              value=p99_canary)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}ms"


def judge_checks(checks: tuple[CheckResult, ...]) -> tuple[CheckResult, ...]:
    return tuple(c for c in checks if c.kind is CheckKind.JUDGE)


def without_judge_checks(checks: tuple[CheckResult, ...]) -> tuple[CheckResult, ...]:
    return tuple(c for c in checks if c.kind is not CheckKind.JUDGE)


__all__ = [
    "CHECK_PREFIX", "ERROR_RATE", "LATENCY", "carry", "step_window", "check_name", "enabled_tests", "evaluate",
    "judge_checks", "step_log_evidence", "unmeasured", "without_judge_checks",
]
