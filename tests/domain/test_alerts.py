"""Alert severities, Flagger's routing by threshold, muteAlert, and the parsing of both objects."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from canary.domain.alerts import (
    AlertProviderSpec, ProviderRef, ProviderType, Severity, hears, parse_alert_provider_spec, parse_alerts,
    severity_of,
)
from canary.domain.event_facts import EventFacts
from canary.domain.status import CheckKind, CheckResult, Phase, Verdict
from canary.errors import SpecError

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)


def facts(*gates: tuple[str, Verdict]) -> EventFacts:
    checks = tuple(CheckResult(name, CheckKind.WEBHOOK, "http://gate", verdict, NOW) for name, verdict in gates)
    return EventFacts(phase=Phase.WAITING, canary_weight=0, iterations=0, failed_checks=0, revision="r",
                      checks=checks)


@pytest.mark.parametrize(("reason", "expected"), [
    ("Started", Severity.INFO), ("Initialized", Severity.INFO), ("Succeeded", Severity.INFO),
    ("Waiting", Severity.WARN), ("WaitingPromotion", Severity.WARN),
    ("RolledBack", Severity.ERROR), ("Aborted", Severity.ERROR), ("PromotionFailed", Severity.ERROR),
    ("Advanced", None), ("CheckFailed", None), ("AlertProviderInvalid", None),
])
def test_which_events_alert_and_how_loudly(reason: str, expected: Severity | None) -> None:
    assert severity_of(reason, facts(("approve", Verdict.FAIL)), frozenset()) is expected


@pytest.mark.parametrize(("alert", "event", "sent"), [
    (Severity.INFO, Severity.INFO, True), (Severity.INFO, Severity.WARN, True), (Severity.INFO, Severity.ERROR, True),
    (Severity.WARN, Severity.INFO, False), (Severity.WARN, Severity.WARN, True), (Severity.WARN, Severity.ERROR, True),
    (Severity.ERROR, Severity.INFO, False), (Severity.ERROR, Severity.WARN, False),
    (Severity.ERROR, Severity.ERROR, True),
])
def test_an_alert_hears_its_severity_and_worse(alert: Severity, event: Severity, sent: bool) -> None:
    assert hears(alert, event) is sent


def test_mute_alert_silences_a_wait_only_when_every_refusing_gate_is_muted() -> None:
    both = facts(("approve", Verdict.FAIL), ("load-test", Verdict.FAIL), ("open", Verdict.PASS))
    assert severity_of("Waiting", both, frozenset({"approve", "load-test"})) is None
    assert severity_of("Waiting", both, frozenset({"approve"})) is Severity.WARN
    # muteAlert mutes waits, never a rollback.
    assert severity_of("RolledBack", both, frozenset({"approve", "load-test"})) is Severity.ERROR


def test_alerts_parse_with_flaggers_defaults() -> None:
    [alert] = parse_alerts([{"name": "on-call", "providerRef": {"name": "slack"}}], "spec.analysis.alerts")
    assert (alert.severity, alert.provider_ref) == (Severity.INFO, ProviderRef("slack", ""))


@pytest.mark.parametrize(("raw", "field"), [
    ([{"name": "a", "severity": "critical", "providerRef": {"name": "p"}}], "spec.analysis.alerts[0].severity"),
    ([{"name": "a", "providerRef": {"name": "p"}, "channel": "x"}], "spec.analysis.alerts[0].channel"),
    ([{"name": "a", "providerRef": {"name": "p", "kind": "x"}}], "spec.analysis.alerts[0].providerRef.kind"),
    ([{"name": "a", "providerRef": {}}], "spec.analysis.alerts[0].providerRef.name"),
    ([{"name": "a", "providerRef": {"name": "p"}}, {"name": "a", "providerRef": {"name": "q"}}],
     "spec.analysis.alerts[1].name"),
    ([{"name": str(i), "providerRef": {"name": "p"}} for i in range(11)], "spec.analysis.alerts"),
])
def test_a_wrong_alert_is_refused_by_name(raw: object, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_alerts(raw, "spec.analysis.alerts")
    assert caught.value.field == field


def test_a_flagger_alert_provider_parses_unchanged() -> None:
    spec = parse_alert_provider_spec({"type": "slack", "channel": "on-call", "username": "flagger",
                                      "address": "https://hooks.slack.example/x", "secretRef": {"name": "url"}})
    assert spec == AlertProviderSpec(ProviderType.SLACK, "on-call", "flagger", "https://hooks.slack.example/x", "",
                                     "url")
    assert parse_alert_provider_spec({"type": "msteams", "secretRef": {"name": "s"}}).channel == "general"


@pytest.mark.parametrize(("raw", "field"), [
    ({"type": "teams", "address": "http://x"}, "spec.type"),
    ({"type": "slack"}, "spec.address"),
    ({"type": "slack", "address": "http://x", "webhook": "y"}, "spec.webhook"),
    ({"type": "slack", "secretRef": {"name": "s", "key": "k"}}, "spec.secretRef.key"),
])
def test_a_wrong_alert_provider_is_refused_by_name(raw: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_alert_provider_spec(raw)
    assert caught.value.field == field
