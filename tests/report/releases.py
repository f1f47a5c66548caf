"""Fabricated Kubernetes Events with facts, as the controller writes them for two releases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from canary.domain.event_facts import FACTS_ANNOTATION, EventFacts
from canary.domain.status import CheckKind, CheckResult, Phase, Verdict, format_time

START = datetime(2026, 12, 7, 7, 0, 0, tzinfo=timezone.utc)
OLD, HEALTHY, FAULTY = "rev-old-1111", "rev-healthy-2222", "rev-faulty-3333"


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def success_rate(seconds: float, value: float | None, verdict: Verdict = Verdict.PASS) -> CheckResult:
    return CheckResult(name="request-success-rate", kind=CheckKind.METRIC, source="sum(...)", verdict=verdict,
                       time=at(seconds), value=value, min=99.0, samples=150.0)


def duration(seconds: float, value: float, verdict: Verdict = Verdict.PASS) -> CheckResult:
    return CheckResult(name="request-duration", kind=CheckKind.METRIC, source="histogram_quantile(...)",
                       verdict=verdict, time=at(seconds), value=value, max=200.0, samples=150.0)


class Recorder:
    """Writes Events the way canary/kube/execute.py does, one per call, in order."""

    def __init__(self, name: str = "podinfo", namespace: str = "demo") -> None:
        self.name, self.namespace = name, namespace
        self.events: list[dict[str, Any]] = []

    def __call__(self, seconds: float, reason: str, phase: Phase, weight: int, revision: str,
                 checks: tuple[CheckResult, ...] = (), *, warning: bool = False, message: str = "",
                 failed: int = 0) -> None:
        facts = EventFacts(phase=phase, canary_weight=weight, iterations=0, failed_checks=failed,
                           revision=revision, checks=checks, message=message)
        self.raw(seconds, reason, {FACTS_ANNOTATION: facts.to_annotation()}, warning=warning)

    def raw(self, seconds: float, reason: str, annotations: dict[str, str], *, warning: bool = False) -> None:
        self.events.append({
            "metadata": {"name": f"{self.name}.{len(self.events):04x}", "namespace": self.namespace,
                         "resourceVersion": str(1000 + len(self.events)), "annotations": annotations},
            "involvedObject": {"kind": "Canary", "name": self.name, "namespace": self.namespace},
            "reason": reason,
            "message": f"{reason} message",
            "type": "Warning" if warning else "Normal",
            "firstTimestamp": format_time(at(seconds)),
        })


def healthy_then_faulty() -> Recorder:
    """An initialisation, a promoted release, then a release rolled back by its success rate."""
    record = Recorder()
    record(0, "Initializing", Phase.INITIALIZING, 0, "")
    record(2, "Initialized", Phase.INITIALIZED, 0, OLD)
    # Release 1: healthy, 0 -> 20 -> 40 -> 60, promoted.
    record(10, "Started", Phase.PROGRESSING, 0, HEALTHY)
    passing = (success_rate(13, 100.0), duration(13, 40.0))
    record(13, "Advanced", Phase.PROGRESSING, 20, HEALTHY, passing)
    passing = (success_rate(16, 99.8), duration(16, 45.0))
    record(16, "Advanced", Phase.PROGRESSING, 40, HEALTHY, passing)
    passing = (success_rate(19, 100.0), duration(19, 42.0))
    record(19, "Advanced", Phase.PROGRESSING, 60, HEALTHY, passing)
    passing = (success_rate(22, 99.9), duration(22, 41.0))
    record(22, "Promoting", Phase.PROMOTING, 60, HEALTHY, passing)
    record(25, "Finalising", Phase.FINALISING, 0, HEALTHY, passing)
    record(27, "Succeeded", Phase.SUCCEEDED, 0, HEALTHY, passing, message="promoted")
    # Release 2: faulty, fails twice at 20% and is rolled back.
    record(40, "Started", Phase.PROGRESSING, 0, FAULTY)
    record(43, "Advanced", Phase.PROGRESSING, 20, FAULTY, (success_rate(43, 100.0), duration(43, 60.0)))
    failing = (success_rate(46, 80.5, Verdict.FAIL), duration(46, 310.0, Verdict.FAIL))
    record(46, "CheckFailed", Phase.PROGRESSING, 20, FAULTY, failing, warning=True, failed=1)
    failing = (success_rate(49, 79.25, Verdict.FAIL), duration(49, 305.0, Verdict.FAIL))
    record(49, "CheckFailed", Phase.PROGRESSING, 20, FAULTY, failing, warning=True, failed=2)
    cause = "2 failed checks reached the threshold 2: request-success-rate 79.25 < 99"
    # Same second as the last CheckFailed: only the write order (resourceVersion) tells them apart.
    record(49, "RolledBack", Phase.FAILED, 0, FAULTY, failing, warning=True, message=cause, failed=2)
    return record
