"""The facts an Event carries survive the trip through an annotation, and garbage is refused by name."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from canary.domain.event_facts import FACTS_ANNOTATION, EventFacts, FactsError
from canary.domain.status import CanaryStatus, CheckKind, CheckResult, Phase, Verdict

_NOW = datetime(2026, 12, 7, 7, 0, tzinfo=timezone.utc)


def _status() -> CanaryStatus:
    checks = (
        CheckResult("request-success-rate", CheckKind.METRIC, "sum(rate(x[1m]))" * 200, Verdict.FAIL, _NOW,
                    value=97.5, min=99.0, samples=412.0, message="97.5 is below the minimum 99"),
        CheckResult("request-duration", CheckKind.METRIC, "histogram_quantile(...)", Verdict.PASS, _NOW,
                    value=41.0, max=500.0, samples=412.0),
    )
    return CanaryStatus(phase=Phase.PROGRESSING, canary_weight=30, iterations=0, failed_checks=2,
                        last_applied_spec="6f7c", checks=checks)


def test_facts_round_trip_through_the_annotation_without_the_queries() -> None:
    facts = EventFacts.of(_status())
    raw = facts.to_annotation()
    assert "sum(rate" not in raw and len(raw) < 1024
    back = EventFacts.from_annotation(raw)
    assert (back.phase, back.canary_weight, back.failed_checks, back.revision) == (Phase.PROGRESSING, 30, 2, "6f7c")
    [failing] = back.failing_checks
    assert (failing.name, failing.value, failing.min, failing.max, failing.samples) == (
        "request-success-rate", 97.5, 99.0, None, 412.0)
    assert failing.message == "97.5 is below the minimum 99"
    assert [c.name for c in back.checks] == ["request-success-rate", "request-duration"]


def test_an_event_without_the_annotation_has_no_facts() -> None:
    assert EventFacts.from_event({"metadata": {"name": "podinfo.1"}}) is None
    assert EventFacts.from_event({"metadata": {"annotations": None}}) is None


def test_a_new_canary_without_phase_round_trips() -> None:
    back = EventFacts.from_annotation(EventFacts.of(CanaryStatus()).to_annotation())
    assert back.phase is None and back.checks == ()


@pytest.mark.parametrize(("raw", "says"), [
    ("not json", "is not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"v": 99}', "version 99"),
    ('{"v": 1, "phase": "Sideways"}', "does not hold event facts"),
    ('{"v": 1, "checks": {"a": 1}}', "does not hold event facts"),
    ('{"v": 1, "canaryWeight": "lots"}', "does not hold event facts"),
])
def test_garbage_is_refused_with_the_annotation_named(raw: str, says: str) -> None:
    with pytest.raises(FactsError, match=says) as caught:
        EventFacts.from_event({"metadata": {"annotations": {FACTS_ANNOTATION: raw}}})
    assert FACTS_ANNOTATION in str(caught.value)


def test_the_recording_time_keeps_its_microseconds() -> None:
    at = _NOW.replace(microsecond=250_001)
    raw = replace(EventFacts.of(_status()), time=at).to_annotation()
    assert '"time":"2026-12-07T07:00:00.250001Z"' in raw
    assert EventFacts.from_annotation(raw).time == at
