"""Which changes of a status are "quiet": worth no API write of their own.

A Canary waiting at a closed gate, or the judge looking between two ticks, decides a new status
on every pass, but the only things that move are clocks and measurements: when the tick ran,
when the judge last looked, the values of checks whose verdicts stayed the same. Writing each
of those costs a status patch and an Event per Canary per tick, and tells a reader nothing new.

This module is the one place that says which fields are *soft* (:func:`only_soft_changes`) and
when a repeated Event is the same occurrence again (:func:`facts_repeat`). Everything else in
the status is *hard*: the phase, the weight, every counter, the revision, the judge's carried
evidence, the conditions. A hard change is always written at once, so nothing a decision rests
on (the weight a route shows, the failures counted towards the threshold) is ever held back.
"""

from __future__ import annotations

from dataclasses import replace

from canary.domain.event_facts import EventFacts
from canary.domain.status import CanaryStatus, CheckResult, Condition

__all__ = ["QUIET_WRITE_EVERY", "facts_repeat", "only_soft_changes", "repeat_key"]

#: A quiet status is written anyway on the N-th quiet pass in a row, so what ``kubectl canary
#: status`` shows (last analysis time, check values, the judge's last look) is at most N quiet
#: passes old: 5 intervals of a waiting Canary (5 min at the default 1m) or 5 judge looks (75 s at
#: the default lookEvery 15s). It cuts a waiting Canary's status and Event writes five-fold, and
#: bounds what a crash forgets (see ``canary.kube.quiet_status``) to N-1 passes.
QUIET_WRITE_EVERY = 5


def only_soft_changes(old: CanaryStatus, new: CanaryStatus) -> bool:
    """True when ``new`` differs from ``old`` in soft fields at most: ``lastAnalysisTime``,
    ``judge.lastLook``, and within checks that keep their name, kind, verdict and bounds, their
    time, value, samples, query (its window grows with the run) and message; a condition's
    ``lastTransitionTime``. Equal statuses are trivially quiet."""
    return _hard(old) == _hard(new)


def facts_repeat(old: EventFacts, new: EventFacts) -> bool:
    """True when an Event with ``new`` facts tells nothing ``old`` did not (same phase, weight,
    counters, revision, message and check verdicts); only its time and measurements moved."""
    return repeat_key(old) == repeat_key(new)


def repeat_key(facts: EventFacts) -> EventFacts:
    """The part of ``facts`` a repeat must share: the facts without their time and soft check
    fields (no query text either, so it is small enough to keep per Canary)."""
    return replace(facts, time=None, checks=tuple(_hard_check(c) for c in facts.checks))


def _hard(status: CanaryStatus) -> CanaryStatus:
    """``status`` with every soft field blanked: two statuses with equal hard parts differ in
    soft fields only."""
    return replace(
        status,
        last_analysis_time=None,
        judge=replace(status.judge, last_look=None),
        checks=tuple(_hard_check(c) for c in status.checks),
        conditions=tuple(_hard_condition(c) for c in status.conditions),
    )


_EPOCH_CHECK = CheckResult.from_dict({})


def _hard_check(check: CheckResult) -> CheckResult:
    # Kept: name, kind, verdict, and the bounds it was held to (min, max, evidenceBound), which
    # change only with the spec.
    return replace(check, time=_EPOCH_CHECK.time, source="", value=None, samples=None, message="",
                   primary_value=None, primary_samples=None, evidence=None)


def _hard_condition(condition: Condition) -> Condition:
    return replace(condition, last_transition_time=_EPOCH_CHECK.time)
