"""What the controller knew when it recorded an Event, in a form programs read.

Every Kubernetes Event the controller writes about a Canary carries these facts as the annotation
``canary.dev/facts``: the phase, weight and checks the decision left behind. Chat alerts and
``canary report`` read them from there instead of parsing messages written for people, so a
reworded message never breaks a notifier or a timeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from canary.domain.status import CanaryStatus, CheckResult, Phase, Verdict, parse_time

__all__ = ["FACTS_ANNOTATION", "EventFacts", "FactsError"]

FACTS_ANNOTATION = "canary.dev/facts"

#: Bumped when a field changes meaning; readers skip facts of a version they do not know.
_VERSION = 1

# The rendered query can be kilobytes and is already in status; the facts keep what a reader
# needs to say how a check did.
_DROPPED_CHECK_KEYS = ("source",)


class FactsError(ValueError):
    """An annotation that does not hold facts this version can read."""


@dataclass(frozen=True)
class EventFacts:
    phase: Phase | None
    canary_weight: int
    iterations: int
    failed_checks: int
    #: The revision the run analyses (status.lastAppliedSpec).
    revision: str
    checks: tuple[CheckResult, ...]
    #: Why the last run ended, once it has (status.message).
    message: str = ""
    #: When the Event was recorded, to the microsecond: an Event's own timestamps have one-second
    #: resolution, too coarse to order a tick's steps on a timeline.
    time: datetime | None = None

    @classmethod
    def of(cls, status: CanaryStatus) -> EventFacts:
        return cls(
            phase=status.phase,
            canary_weight=status.canary_weight,
            iterations=status.iterations,
            failed_checks=status.failed_checks,
            revision=status.last_applied_spec,
            checks=status.checks,
            message=status.message,
        )

    @property
    def failing_checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.verdict is not Verdict.PASS)

    def to_annotation(self) -> str:
        checks = [{k: v for k, v in c.to_dict().items() if k not in _DROPPED_CHECK_KEYS} for c in self.checks]
        body: dict[str, Any] = {
            "v": _VERSION,
            "phase": self.phase.value if self.phase else None,
            "canaryWeight": self.canary_weight,
            "iterations": self.iterations,
            "failedChecks": self.failed_checks,
            "revision": self.revision,
            "checks": checks,
        }
        if self.message:
            body["message"] = self.message
        if self.time is not None:
            body["time"] = self.time.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_annotation(cls, raw: str) -> EventFacts:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise FactsError(f"{FACTS_ANNOTATION} is not JSON: {exc}") from exc
        if not isinstance(body, Mapping):
            raise FactsError(f"{FACTS_ANNOTATION} is not a JSON object")
        if body.get("v") != _VERSION:
            raise FactsError(f"{FACTS_ANNOTATION} has version {body.get('v')!r}; this reader knows {_VERSION}")
        try:
            phase = body.get("phase")
            checks = body.get("checks") or []
            if not isinstance(checks, list):
                raise TypeError("checks is not a list")
            return cls(
                phase=Phase(phase) if phase else None,
                canary_weight=int(body.get("canaryWeight", 0)),
                iterations=int(body.get("iterations", 0)),
                failed_checks=int(body.get("failedChecks", 0)),
                revision=str(body.get("revision", "")),
                checks=tuple(CheckResult.from_dict(c) for c in checks),
                message=str(body.get("message", "")),
                time=parse_time(body.get("time")),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise FactsError(f"{FACTS_ANNOTATION} does not hold event facts: {exc}") from exc

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> EventFacts | None:
        """The facts of a Kubernetes Event read from the API server; ``None`` for an Event the
        controller did not annotate (older versions, other components)."""
        annotations = (event.get("metadata") or {}).get("annotations") or {}
        raw = annotations.get(FACTS_ANNOTATION)
        return None if raw is None else cls.from_annotation(str(raw))
