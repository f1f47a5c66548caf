"""What an alert says, before any chat system's format: built from the event's facts. Pure.

On-call reads one message and must be able to act on it: which Canary, in which phase at which
weight, which check failed with its value against its bounds, and the exact commands that roll
back, promote or pause it. Every chat format renders this one :class:`AlertMessage`, so the
systems never disagree on content, only on markup.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from canary.domain.alerts import Severity
from canary.domain.status import Annotation, CheckResult
from canary.notify.base import Notice

__all__ = ["AlertMessage", "Command", "alert_message", "check_line", "number"]

#: Severity colours shared by every format that has colours (hex, no '#').
COLOURS = {Severity.INFO: "2EB886", Severity.WARN: "DAA038", Severity.ERROR: "A30200"}


@dataclass(frozen=True)
class Command:
    """One on-call action, as the kubectl annotation and as the canary CLI command."""

    action: str
    kubectl: str
    cli: str


@dataclass(frozen=True)
class AlertMessage:
    title: str
    summary: str
    severity: Severity
    #: Label and value pairs: Canary, phase, weight, failed checks, revision.
    fields: tuple[tuple[str, str], ...]
    #: One line per check that did not pass, with its value and bounds.
    failing: tuple[str, ...]
    commands: tuple[Command, ...]
    namespace: str
    name: str

    @property
    def colour(self) -> str:
        return COLOURS[self.severity]

    def plain_lines(self) -> list[str]:
        """The whole message as plain text lines, for formats without structure."""
        lines = [self.title, self.summary, ""]
        lines += [f"{label}: {value}" for label, value in self.fields]
        if self.failing:
            lines += ["", "Failing checks:"] + [f"- {line}" for line in self.failing]
        lines += ["", "Commands:"] + [f"{c.action}: {c.kubectl}" for c in self.commands]
        lines += [f"{c.action} (canary CLI): {c.cli}" for c in self.commands]
        return lines


def number(value: float) -> str:
    """A value as people read it: integers without ``.0``, others with at most 4 significant digits."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def check_line(check: CheckResult) -> str:
    """``error-rate: 7.5 outside [0, 1] (Fail): ...`` — the value, the bounds, the verdict, why."""
    value = "no value" if check.value is None else number(check.value)
    low = "-inf" if check.min is None else number(check.min)
    high = "+inf" if check.max is None else number(check.max)
    bounds = f" outside [{low}, {high}]" if check.min is not None or check.max is not None else ""
    if check.value is None and bounds:
        bounds = f" (bounds [{low}, {high}])"
    samples = "" if check.samples is None else f", {number(check.samples)} samples"
    why = f": {check.message}" if check.message else ""
    return f"{check.name}: {value}{bounds} ({check.verdict.value}{samples}){why}"


def commands(namespace: str, name: str) -> tuple[Command, ...]:
    ns, nm = shlex.quote(namespace), shlex.quote(name)
    annotate = f"kubectl annotate canary {nm} -n {ns} --overwrite"
    return (
        Command("Roll back", f"{annotate} {Annotation.ROLLBACK.value}='rolled back from an alert'",
                f"canary rollback {nm} -n {ns}"),
        Command("Promote", f"{annotate} {Annotation.PROMOTE.value}=true", f"canary promote {nm} -n {ns}"),
        Command("Pause", f"{annotate} {Annotation.PAUSE.value}=true", f"canary pause {nm} -n {ns}"),
    )


def alert_message(notice: Notice, severity: Severity) -> AlertMessage:
    facts = notice.facts
    phase = facts.phase.value if facts.phase is not None else "Unknown"
    fields = (
        ("Canary", notice.canary),
        ("Phase", phase),
        ("Weight", f"{facts.canary_weight}%"),
        ("Failed checks", str(facts.failed_checks)),
        ("Revision", facts.revision or "-"),
    )
    return AlertMessage(
        title=f"{notice.canary}: {notice.reason}",
        summary=notice.message,
        severity=severity,
        fields=fields,
        failing=tuple(check_line(c) for c in facts.failing_checks),
        commands=commands(notice.namespace, notice.name),
        namespace=notice.namespace,
        name=notice.name,
    )
