"""One release rebuilt from the Kubernetes Events the controller wrote about a Canary.

Each Event carries :class:`~canary.domain.event_facts.EventFacts` (phase, weight, checks) in its
``canary.dev/facts`` annotation, so the sequence of Events is the release's history: the model
here is read from those facts only, never from the messages, which are written for people.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from canary.domain.event_facts import EventFacts, FactsError
from canary.domain.status import (
    IDLE_PHASES,
    RUNNING_PHASES,
    CheckKind,
    CheckResult,
    Phase,
    Verdict,
    parse_time,
)

__all__ = [
    "CheckPoint",
    "CheckSeries",
    "PhaseSpan",
    "Recorded",
    "Rollback",
    "RunNotFound",
    "Timeline",
    "WeightStep",
    "pick_run",
    "read_events",
    "runs",
    "timeline",
]


class RunNotFound(LookupError):
    """No recorded run matches what was asked for."""


@dataclass(frozen=True)
class Recorded:
    """One Event as the report needs it."""

    time: datetime
    reason: str
    message: str
    warning: bool
    facts: EventFacts


@dataclass(frozen=True)
class WeightStep:
    start: datetime
    weight: int


@dataclass(frozen=True)
class PhaseSpan:
    phase: Phase
    start: datetime
    end: datetime


@dataclass(frozen=True)
class CheckPoint:
    time: datetime
    value: float | None
    verdict: Verdict
    min: float | None
    max: float | None
    samples: float | None
    message: str

    @property
    def failed(self) -> bool:
        return self.verdict in (Verdict.FAIL, Verdict.ERROR)

    @property
    def held(self) -> bool:
        """No verdict on the canary: no data, or the metrics provider did not answer. Whether
        that counts as failed is the analysis's policy, which the facts do not carry."""
        return self.verdict in (Verdict.NO_DATA, Verdict.UNAVAILABLE)


@dataclass(frozen=True)
class CheckSeries:
    name: str
    kind: CheckKind
    points: tuple[CheckPoint, ...]

    @property
    def min(self) -> float | None:
        """The latest lower bound (bounds change only with the Canary's spec)."""
        return next((p.min for p in reversed(self.points) if p.min is not None), None)

    @property
    def max(self) -> float | None:
        return next((p.max for p in reversed(self.points) if p.max is not None), None)


@dataclass(frozen=True)
class Rollback:
    time: datetime
    reason: str
    #: Why the run ended, as the controller put it in status.message.
    cause: str
    #: The checks that had not passed at that moment (the ones that rolled it back).
    failing: tuple[CheckResult, ...]


@dataclass(frozen=True)
class Timeline:
    revision: str
    start: datetime
    end: datetime
    events: tuple[Recorded, ...]
    weights: tuple[WeightStep, ...]
    phases: tuple[PhaseSpan, ...]
    checks: tuple[CheckSeries, ...]
    rollback: Rollback | None

    @property
    def outcome(self) -> Phase | None:
        return self.events[-1].facts.phase

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _order(event: Mapping[str, Any], facts: EventFacts) -> tuple[datetime, int]:
    meta = event.get("metadata") or {}
    when = (facts.time or parse_time(event.get("firstTimestamp")) or parse_time(event.get("eventTime"))
            or parse_time(meta.get("creationTimestamp")))
    assert when is not None  # read_events drops Events without a time first
    # Events of older controllers have only their one-second timestamps, and a decision often
    # writes two Events in the same second (CheckFailed, then RolledBack): the API server's
    # write order breaks the tie.
    version = str(meta.get("resourceVersion") or "0")
    return when, int(version) if version.isdigit() else 0


def read_events(events: Iterable[Mapping[str, Any]]) -> tuple[list[Recorded], list[str]]:
    """The Events that carry facts, oldest first, and a note for each one skipped."""
    kept: list[tuple[tuple[datetime, int], Recorded]] = []
    notes: list[str] = []
    for event in events:
        reason = str(event.get("reason") or "")
        name = str((event.get("metadata") or {}).get("name") or "?")
        try:
            facts = EventFacts.from_event(event)
        except FactsError as exc:
            notes.append(f"skipped Event {name} ({reason}): {exc}")
            continue
        if facts is None:
            notes.append(f"skipped Event {name} ({reason}): no canary.dev/facts annotation")
            continue
        meta = event.get("metadata") or {}
        if not (facts.time or event.get("firstTimestamp") or event.get("eventTime") or meta.get("creationTimestamp")):
            notes.append(f"skipped Event {name} ({reason}): no time")
            continue
        order = _order(event, facts)
        kept.append((order, Recorded(time=order[0], reason=reason, message=str(event.get("message") or ""),
                                     warning=event.get("type") == "Warning", facts=facts)))
    kept.sort(key=lambda pair: pair[0])
    return [recorded for _, recorded in kept], notes


def _starts_run(previous: Recorded, current: Recorded) -> bool:
    # A run is one revision analysed from start to end: a new revision (also one that replaces
    # the release mid-run), or the same revision running again after an idle phase (a retry).
    if current.facts.revision != previous.facts.revision:
        return True
    return previous.facts.phase in IDLE_PHASES and current.facts.phase in RUNNING_PHASES


def runs(recorded: Sequence[Recorded]) -> list[tuple[Recorded, ...]]:
    """The recorded Events cut into runs, oldest first."""
    cut: list[list[Recorded]] = []
    for event in recorded:
        if not cut or _starts_run(cut[-1][-1], event):
            cut.append([event])
        else:
            cut[-1].append(event)
    return [tuple(run) for run in cut]


def _is_release(run: Sequence[Recorded]) -> bool:
    return any(e.facts.phase in RUNNING_PHASES for e in run)


def pick_run(recorded: Sequence[Recorded], revision: str | None = None) -> tuple[Recorded, ...]:
    """The latest release, or the latest run of ``revision`` (a prefix is enough)."""
    all_runs = runs(recorded)
    if revision:
        matching = [r for r in all_runs if r[0].facts.revision.startswith(revision)]
        if not matching:
            known = ", ".join(sorted({r[0].facts.revision for r in all_runs})) or "none"
            raise RunNotFound(f"no recorded run of revision {revision} (recorded: {known})")
        return matching[-1]
    releases = [r for r in all_runs if _is_release(r)]
    if releases:
        return releases[-1]
    if all_runs:
        return all_runs[-1]
    raise RunNotFound("no Event with facts was recorded")


def _weights(run: Sequence[Recorded]) -> tuple[WeightStep, ...]:
    steps: list[WeightStep] = []
    for event in run:
        if not steps or steps[-1].weight != event.facts.canary_weight:
            steps.append(WeightStep(event.time, event.facts.canary_weight))
    return tuple(steps)


def _phases(run: Sequence[Recorded]) -> tuple[PhaseSpan, ...]:
    spans: list[PhaseSpan] = []
    for event, following in zip(run, [*run[1:], None]):
        phase = event.facts.phase
        if phase is None:
            continue
        end = following.time if following is not None else event.time
        if spans and spans[-1].phase is phase:
            spans[-1] = PhaseSpan(phase, spans[-1].start, end)
        else:
            spans.append(PhaseSpan(phase, event.time, end))
    return tuple(spans)


def _checks(run: Sequence[Recorded]) -> tuple[CheckSeries, ...]:
    # The same result appears in every Event until the next analysis tick replaces it: a check
    # is one point per time it was evaluated.
    points: dict[str, dict[datetime, CheckPoint]] = {}
    kinds: dict[str, CheckKind] = {}
    for event in run:
        for check in event.facts.checks:
            kinds.setdefault(check.name, check.kind)
            points.setdefault(check.name, {})[check.time] = CheckPoint(
                time=check.time, value=check.value, verdict=check.verdict, min=check.min, max=check.max,
                samples=check.samples, message=check.message)
    return tuple(CheckSeries(name, kinds[name], tuple(sorted(by_time.values(), key=lambda p: p.time)))
                 for name, by_time in points.items())


def _rollback(run: Sequence[Recorded]) -> Rollback | None:
    for event in run:
        if event.facts.phase is Phase.FAILED:
            return Rollback(time=event.time, reason=event.reason, cause=event.facts.message or event.message,
                            failing=event.facts.failing_checks)
    return None


def timeline(run: Sequence[Recorded]) -> Timeline:
    if not run:
        raise RunNotFound("a timeline needs at least one Event")
    return Timeline(
        revision=run[0].facts.revision,
        start=run[0].time,
        end=run[-1].time,
        events=tuple(run),
        weights=_weights(run),
        phases=_phases(run),
        checks=_checks(run),
        rollback=_rollback(run),
    )
