"""kstatus conditions and Flagger's Promoted, derived from the phase on every decision."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canary.domain.conditions import derive_conditions
from canary.domain.observed import Problem
from canary.domain.status import CanaryStatus, Condition, ConditionType, Phase
from tests.domain.world import T0

READY, RECONCILING, STALLED, PROMOTED = (ConditionType.READY, ConditionType.RECONCILING, ConditionType.STALLED,
                                         ConditionType.PROMOTED)

#: phase -> (Ready, Reconciling, Stalled, Promoted) with no problem, not suspended, not paused.
TABLE: dict[Phase | None, tuple[bool, bool, bool, bool]] = {
    None: (False, False, False, False),
    Phase.INITIALIZING: (False, True, False, False),
    Phase.INITIALIZED: (True, False, False, True),
    Phase.WAITING: (False, True, False, False),
    Phase.PROGRESSING: (False, True, False, False),
    Phase.WAITING_PROMOTION: (False, True, False, False),
    Phase.PROMOTING: (False, True, False, False),
    Phase.FINALISING: (False, True, False, False),
    Phase.SUCCEEDED: (True, False, False, True),
    Phase.FAILED: (False, False, True, False),
    Phase.TERMINATING: (False, True, False, False),
    Phase.TERMINATED: (False, False, False, False),
}
PHASES = list(TABLE)
PROBLEM = Problem(field="spec.analysis.metrics[0].templateRef", reason="TemplateNotFound",
                  message="MetricTemplate errors not found")


def conditions(status: CanaryStatus, **kwargs: object) -> dict[ConditionType, Condition]:
    out = derive_conditions(status, T0, **kwargs)  # type: ignore[arg-type]
    assert [c.type for c in out] == [READY, STALLED, RECONCILING, PROMOTED]
    return {c.type: c for c in out}


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
@pytest.mark.parametrize("suspended", [False, True], ids=["active", "suspended"])
@pytest.mark.parametrize("problem", [None, PROBLEM], ids=["ok", "problem"])
@pytest.mark.parametrize("phase", PHASES, ids=str)
def test_conditions_per_phase(phase: Phase | None, problem: Problem | None, suspended: bool, paused: bool) -> None:
    # While Initializing, a message means the primary missed its deadline (tested below).
    message = "" if phase is Phase.INITIALIZING else "boom"
    status = CanaryStatus(phase=phase, canary_weight=25, failed_checks=1, message=message)
    got = conditions(status, problem=problem, suspended=suspended, paused=paused)
    ready, reconciling, stalled, promoted = TABLE[phase]
    if problem is not None:
        ready, reconciling, stalled = False, False, True
        assert got[STALLED].reason == got[READY].reason == "TemplateNotFound"
        assert got[STALLED].message == PROBLEM.message
    if suspended:
        reconciling = False
        assert got[RECONCILING].reason == "Suspended"
    elif paused and reconciling:
        assert got[RECONCILING].reason == "Paused"
        assert "25%" in got[RECONCILING].message
    assert (got[READY].status, got[RECONCILING].status, got[STALLED].status, got[PROMOTED].status) == (
        ready, reconciling, stalled, promoted)
    # kstatus: a resource is never both Ready and Reconciling, nor Ready and Stalled.
    assert not (got[READY].status and (got[RECONCILING].status or got[STALLED].status))
    for c in got.values():
        assert c.last_transition_time == T0


def test_a_primary_past_its_deadline_while_initializing_is_stalled() -> None:
    message = "podinfo-primary not ready after progressDeadlineSeconds (600s)"
    got = conditions(CanaryStatus(phase=Phase.INITIALIZING, message=message))
    assert got[STALLED].status and got[STALLED].reason == "PrimaryNotReady" and got[STALLED].message == message
    assert not got[READY].status and not got[RECONCILING].status


@pytest.mark.parametrize("phase", [Phase.PROGRESSING, Phase.PROMOTING, Phase.INITIALIZING], ids=str)
def test_progress_message_while_reconciling(phase: Phase) -> None:
    got = conditions(CanaryStatus(phase=phase, canary_weight=30, failed_checks=2))
    assert got[RECONCILING].reason == phase.value
    assert got[RECONCILING].message == "canary weight 30%, 2 failed checks"
    assert got[READY].message == f"{phase.value}: canary weight 30%, 2 failed checks"


@pytest.mark.parametrize("message, shown", [("3 failed checks reached the threshold 3", "3 failed checks reached "
                                                                                          "the threshold 3"),
                                            ("", "the release was rolled back")], ids=["message", "default"])
def test_failed_explains_why(message: str, shown: str) -> None:
    got = conditions(CanaryStatus(phase=Phase.FAILED, message=message))
    assert got[READY].reason == "Failed" and got[READY].message == shown
    assert got[STALLED].reason == "RolledBack" and got[STALLED].message == shown + "; push a new revision or retry"
    assert got[PROMOTED].message == message


LATER = T0 + timedelta(hours=1)


@pytest.mark.parametrize("before, after", [
    (Phase.PROGRESSING, Phase.PROGRESSING),
    (Phase.PROGRESSING, Phase.PROMOTING),
    (Phase.PROGRESSING, Phase.SUCCEEDED),
    (Phase.PROGRESSING, Phase.FAILED),
    (Phase.SUCCEEDED, Phase.INITIALIZED),
    (Phase.SUCCEEDED, Phase.PROGRESSING),
    (Phase.FAILED, Phase.PROGRESSING),
    (Phase.INITIALIZING, Phase.INITIALIZED),
    (Phase.WAITING, Phase.FAILED),
], ids=lambda p: str(p))
def test_last_transition_time_moves_only_when_a_condition_flips(before: Phase, after: Phase) -> None:
    earlier = derive_conditions(CanaryStatus(phase=before), T0)
    got = {c.type: c for c in derive_conditions(CanaryStatus(phase=after, conditions=earlier), LATER)}
    for c in earlier:
        flipped = got[c.type].status != c.status
        assert got[c.type].last_transition_time == (LATER if flipped else T0), c.type


@pytest.mark.parametrize("phase", PHASES, ids=str)
def test_same_status_gives_identical_conditions(phase: Phase | None) -> None:
    status = CanaryStatus(phase=phase)
    once = derive_conditions(status, T0)
    again = derive_conditions(status.with_(conditions=once), LATER)
    assert again == once


def test_a_problem_keeps_its_time_while_it_lasts() -> None:
    first = derive_conditions(CanaryStatus(phase=Phase.PROGRESSING), T0, problem=PROBLEM)
    second = derive_conditions(CanaryStatus(phase=Phase.PROGRESSING, conditions=first), LATER, problem=PROBLEM)
    assert second == first
    fixed = {c.type: c for c in derive_conditions(CanaryStatus(phase=Phase.PROGRESSING, conditions=second), LATER)}
    assert fixed[STALLED].status is False and fixed[STALLED].last_transition_time == LATER
    assert fixed[RECONCILING].status is True and fixed[RECONCILING].last_transition_time == LATER
