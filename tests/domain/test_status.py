"""The status record's wire form: what the controller writes is what it reads back."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from canary.domain.conditions import derive_conditions
from canary.domain.status import (
    Annotation, CanaryStatus, CheckKind, CheckResult, Condition, ConditionType, Phase, Verdict, format_time,
    parse_time,
)
from tests.domain.world import T0

FULL = CanaryStatus(
    phase=Phase.PROGRESSING, canary_weight=30, failed_checks=2, iterations=1, last_applied_spec="abc",
    last_promoted_spec="def", last_transition_time=T0, observed_generation=7,
    checks=(CheckResult("request-success-rate", CheckKind.METRIC, "sum(rate(x[1m]))", Verdict.FAIL, T0, value=97.5,
                        min=99.0, samples=1200.0, message="97.5 is below the minimum 99"),
            CheckResult("gate", CheckKind.WEBHOOK, "http://gate/", Verdict.PASS, T0)),
    last_analysis_time=T0 + timedelta(minutes=1), waiting_since=T0 + timedelta(seconds=5), run_started=T0,
    handled_annotations={"rollback": "paged"}, primary_replicas=3, message="why",
)


@pytest.mark.parametrize("status", [
    CanaryStatus(),
    FULL,
    FULL.with_(conditions=derive_conditions(FULL, T0)),
    *[CanaryStatus(phase=p) for p in Phase],
], ids=lambda s: str(s.phase) + ("+conditions" if s.conditions else ""))
def test_round_trip(status: CanaryStatus) -> None:
    assert CanaryStatus.from_dict(status.to_dict()) == status


def test_wire_form_is_camel_case() -> None:
    wire = FULL.to_dict()
    assert wire["phase"] == "Progressing" and wire["canaryWeight"] == 30 and wire["lastAppliedSpec"] == "abc"
    assert wire["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert wire["handledAnnotations"] == {"rollback": "paged"}
    assert wire["checks"][0] == {
        "name": "request-success-rate", "kind": "metric", "source": "sum(rate(x[1m]))", "verdict": "Fail",
        "time": "2026-01-01T00:00:00Z", "value": "97.5", "min": "99", "samples": "1200",
        "message": "97.5 is below the minimum 99",
    }
    assert wire["checks"][1] == {"name": "gate", "kind": "webhook", "source": "http://gate/", "verdict": "Pass",
                                 "time": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize("value, wire", [
    (1.0, "1"), (0.0, "0"), (-3.0, "-3"), (97.5, "97.5"), (0.1, "0.1"), (math.inf, "inf"), (-math.inf, "-inf"),
    (math.nan, "nan"), (2.0**60, repr(2.0**60)),
])
def test_numbers_are_strings_on_the_wire(value: float, wire: str) -> None:
    check = CheckResult("m", CheckKind.METRIC, "q", Verdict.PASS, T0, value=value)
    out = check.to_dict()
    assert out["value"] == wire
    back = CheckResult.from_dict(out).value
    assert back is not None
    assert (math.isnan(back) and math.isnan(value)) or back == value


@pytest.mark.parametrize("raw, phase", [({"phase": "Progressing"}, Phase.PROGRESSING), ({"phase": "Bogus"}, None),
                                        ({"phase": None}, None), ({}, None), (None, None)],
                         ids=["known", "unknown", "null", "missing", "no-status"])
def test_unknown_phases_read_as_new(raw: dict[str, Any] | None, phase: Phase | None) -> None:
    assert CanaryStatus.from_dict(raw).phase is phase


def test_tolerant_reading() -> None:
    status = CanaryStatus.from_dict({
        "canaryWeight": None, "checks": None,
        "conditions": [{"type": "Ready", "status": "True", "reason": "r", "message": "m",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"},
                       {"type": "Healthy", "status": "True"}],
        "lastAnalysisTime": "",
    })
    assert status.canary_weight == 0 and status.checks == () and status.last_analysis_time is None
    assert status.conditions == (Condition(ConditionType.READY, True, "r", "m", T0),)
    assert status.condition(ConditionType.STALLED) is None


@pytest.mark.parametrize("text, expected", [
    ("2026-01-01T00:00:00Z", T0),
    ("2026-01-01T01:00:00+01:00", T0),
    ("", None), (None, None), (5, None),
])
def test_parse_time(text: object, expected: datetime | None) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is timezone.utc


def test_format_time_is_utc_seconds() -> None:
    local = datetime(2026, 1, 1, 2, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(local) == "2026-01-01T00:00:00Z"
    assert format_time(None) is None


@pytest.mark.parametrize("annotation, short", [(Annotation.ROLLBACK, "rollback"), (Annotation.PROMOTE, "promote"),
                                               (Annotation.PAUSE, "pause"), (Annotation.RETRY, "retry")])
def test_annotation_short_names(annotation: Annotation, short: str) -> None:
    assert annotation.value == f"canary.dev/{short}"
    assert annotation.short == short
