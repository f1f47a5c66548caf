"""Which status changes are soft (held back, coalesced) and which are hard (written at once),
field by field; and when an Event's facts make it a repeat of the last one."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from canary.domain.event_facts import EventFacts
from canary.domain.quiet import QUIET_WRITE_EVERY, facts_repeat, only_soft_changes
from canary.domain.status import (
    CanaryStatus, CheckKind, CheckResult, Condition, ConditionType, JudgeState, Phase, Verdict,
)

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
LATER = T0 + timedelta(minutes=1)

_METRIC = CheckResult("request-success-rate", CheckKind.METRIC, "sum(rate(x[1m]))", Verdict.PASS, T0,
                      value=99.9, min=99.0, max=None, samples=250.0, message="within bounds")
_JUDGE = CheckResult("judge-error-rate", CheckKind.JUDGE, "sum(rate(y[40s]))", Verdict.PASS, T0,
                     value=0.1, samples=400.0, primary_value=0.1, primary_samples=4000.0, evidence=1.3,
                     evidence_bound=100.0, message="the canary failed 0.1% of 400 requests")
_READY = Condition(ConditionType.READY, False, "Progressing", "Progressing: canary weight 10%", T0)

BASE = CanaryStatus(
    phase=Phase.PROGRESSING, canary_weight=10, failed_checks=1, consecutive_errors=1, consecutive_no_data=1,
    iterations=2, last_applied_spec="abc", last_promoted_spec="def", last_transition_time=T0,
    observed_generation=3, checks=(_METRIC, _JUDGE), conditions=(_READY,), last_analysis_time=T0,
    waiting_since=T0, run_started=T0, handled_annotations={"pause": "false"}, primary_replicas=2,
    message="", judge=JudgeState(step_started=T0, last_look=T0, carried={"latency": 0.5},
                                 error_steps=((1.0, 2.0, 100.0, 1000.0),)),
)

Change = Callable[[CanaryStatus], CanaryStatus]


def _metric(old: CanaryStatus, **changes: object) -> CanaryStatus:
    return replace(old, checks=(replace(old.checks[0], **changes), *old.checks[1:]))


def _judge_check(old: CanaryStatus, **changes: object) -> CanaryStatus:
    return replace(old, checks=(*old.checks[:-1], replace(old.checks[-1], **changes)))


def _condition(old: CanaryStatus, **changes: object) -> CanaryStatus:
    return replace(old, conditions=(replace(old.conditions[0], **changes),))


def _judge(old: CanaryStatus, **changes: object) -> CanaryStatus:
    return replace(old, judge=replace(old.judge, **changes))


SOFT: dict[str, Change] = {
    "lastAnalysisTime": lambda s: replace(s, last_analysis_time=LATER),
    "judge.lastLook": lambda s: _judge(s, last_look=LATER),
    "check time": lambda s: _metric(s, time=LATER),
    "check value": lambda s: _metric(s, value=99.5),
    "check samples": lambda s: _metric(s, samples=300.0),
    "check source (a query whose window grows)": lambda s: _metric(s, source="sum(rate(x[2m]))"),
    "check message": lambda s: _judge_check(s, message="the canary failed 0.2% of 500 requests"),
    "judge check primary value": lambda s: _judge_check(s, primary_value=0.2),
    "judge check primary samples": lambda s: _judge_check(s, primary_samples=5000.0),
    "judge check evidence": lambda s: _judge_check(s, evidence=2.5),
    "condition lastTransitionTime": lambda s: _condition(s, last_transition_time=LATER),
    "all soft fields at once": lambda s: _judge(_metric(replace(s, last_analysis_time=LATER), time=LATER, value=99.4),
                                                last_look=LATER),
}

HARD: dict[str, Change] = {
    "phase": lambda s: replace(s, phase=Phase.WAITING_PROMOTION),
    "canaryWeight": lambda s: replace(s, canary_weight=20),
    "failedChecks": lambda s: replace(s, failed_checks=2),
    "consecutiveErrors": lambda s: replace(s, consecutive_errors=2),
    "consecutiveNoData": lambda s: replace(s, consecutive_no_data=2),
    "iterations": lambda s: replace(s, iterations=3),
    "lastAppliedSpec": lambda s: replace(s, last_applied_spec="xyz"),
    "lastPromotedSpec": lambda s: replace(s, last_promoted_spec="xyz"),
    "lastTransitionTime": lambda s: replace(s, last_transition_time=LATER),
    "observedGeneration": lambda s: replace(s, observed_generation=4),
    "waitingSince": lambda s: replace(s, waiting_since=None),
    "runStarted": lambda s: replace(s, run_started=LATER),
    "handledAnnotations": lambda s: replace(s, handled_annotations={"pause": "true"}),
    "primaryReplicas": lambda s: replace(s, primary_replicas=3),
    "message": lambda s: replace(s, message="promoted"),
    "judge.stepStarted": lambda s: _judge(s, step_started=LATER),
    "judge.carried": lambda s: _judge(s, carried={"latency": 0.7}),
    "judge.errorSteps": lambda s: _judge(s, error_steps=()),
    "check verdict": lambda s: _metric(s, verdict=Verdict.FAIL),
    "check name": lambda s: _metric(s, name="request-duration"),
    "check kind": lambda s: _metric(s, kind=CheckKind.WEBHOOK),
    "check min": lambda s: _metric(s, min=98.0),
    "check max": lambda s: _metric(s, max=100.0),
    "judge check evidence bound": lambda s: _judge_check(s, evidence_bound=20.0),
    "a check added": lambda s: replace(s, checks=(*s.checks, replace(_METRIC, name="gate", kind=CheckKind.WEBHOOK))),
    "a check dropped": lambda s: replace(s, checks=s.checks[:1]),
    "checks reordered": lambda s: replace(s, checks=tuple(reversed(s.checks))),
    "condition status": lambda s: _condition(s, status=True),
    "condition reason": lambda s: _condition(s, reason="Paused"),
    "condition message": lambda s: _condition(s, message="Progressing: canary weight 20%"),
    "a condition added": lambda s: replace(s, conditions=(*s.conditions, replace(_READY, type=ConditionType.STALLED))),
}


@pytest.mark.parametrize("change", SOFT.values(), ids=SOFT.keys())
def test_a_soft_change_alone_is_quiet(change: Change) -> None:
    changed = change(BASE)
    assert changed != BASE, "the case must change something"
    assert only_soft_changes(BASE, changed)
    assert only_soft_changes(changed, BASE)


@pytest.mark.parametrize("change", HARD.values(), ids=HARD.keys())
def test_a_hard_change_is_written_even_among_soft_ones(change: Change) -> None:
    changed = change(BASE)
    assert changed != BASE, "the case must change something"
    assert not only_soft_changes(BASE, changed)
    assert not only_soft_changes(BASE, SOFT["all soft fields at once"](changed))


def test_an_unchanged_status_is_quiet() -> None:
    assert only_soft_changes(BASE, BASE)


def test_every_status_field_is_classified() -> None:
    """A field added to the status must be placed here as soft or hard, not left to chance."""
    covered = {"lastAnalysisTime", "checks", "conditions", "judge"}
    camel = {f.name: "".join(w if i == 0 else w.capitalize() for i, w in enumerate(f.name.split("_")))
             for f in dataclasses.fields(CanaryStatus)}
    classified = set(SOFT) | set(HARD) | covered
    assert {name for name in camel.values() if name not in classified} == set()
    judge_fields = {"judge." + "".join(w if i == 0 else w.capitalize() for i, w in enumerate(f.name.split("_")))
                    for f in dataclasses.fields(JudgeState)}
    assert judge_fields <= classified
    check_fields = {f.name for f in dataclasses.fields(CheckResult)}
    named = " ".join(k for k in (*SOFT, *HARD) if k.startswith(("check", "judge check")))
    assert all(f.replace("_", " ") in named for f in check_fields), check_fields


def test_the_write_interval_is_a_small_positive_count() -> None:
    assert 1 < QUIET_WRITE_EVERY <= 10


def _facts(status: CanaryStatus) -> EventFacts:
    return replace(EventFacts.of(status), time=T0)


def test_facts_that_moved_only_in_time_and_values_repeat() -> None:
    later = SOFT["all soft fields at once"](BASE)
    assert facts_repeat(_facts(BASE), replace(_facts(later), time=LATER))


@pytest.mark.parametrize("name", ["phase", "canaryWeight", "failedChecks", "iterations", "lastAppliedSpec", "message",
                                  "check verdict", "a check added"])
def test_facts_that_moved_in_a_hard_field_do_not_repeat(name: str) -> None:
    assert not facts_repeat(_facts(BASE), _facts(HARD[name](BASE)))
