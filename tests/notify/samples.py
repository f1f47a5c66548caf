"""Notices as the controller builds them, for the notifier tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from canary.domain.alerts import Severity
from canary.domain.event_facts import EventFacts
from canary.domain.status import CheckKind, CheckResult, Phase, Verdict
from canary.notify.base import Notice

NOW = datetime(2026, 12, 7, 7, 0, tzinfo=timezone.utc)


def check(name: str, verdict: Verdict, value: float | None = None, low: float | None = None,
          high: float | None = None, message: str = "", kind: CheckKind = CheckKind.METRIC) -> CheckResult:
    return CheckResult(name=name, kind=kind, source="sum(rate(x[1m]))", verdict=verdict, time=NOW, value=value,
                       min=low, max=high, samples=120 if kind is CheckKind.METRIC else None, message=message)


def rollback_notice(message: str = "2 failed checks reached the threshold 2: error-rate 7.5 > 1",
                    checks: tuple[CheckResult, ...] | None = None, namespace: str = "shop",
                    name: str = "podinfo") -> Notice:
    if checks is None:
        checks = (check("error-rate", Verdict.FAIL, 7.5, None, 1, "7.5 is above 1"),
                  check("latency", Verdict.PASS, 120, None, 500))
    facts = EventFacts(phase=Phase.FAILED, canary_weight=20, iterations=0, failed_checks=2, revision="abc123",
                       checks=checks, message=message)
    return Notice(namespace=namespace, name=name, reason="RolledBack", message=message, warning=True, facts=facts,
                  time=NOW, uid="uid-1", severity=Severity.ERROR)


def with_severity(notice: Notice, severity: Severity) -> Notice:
    return replace(notice, severity=severity)
