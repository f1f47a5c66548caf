"""The Canary's status: the controller's only memory.

Everything the controller knows between two reconciliations lives here, so a restarted
controller continues exactly where the previous one stopped. ``to_dict``/``from_dict`` give the
wire form written to the status subresource (camelCase, as the CRD declares it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    INITIALIZING = "Initializing"
    INITIALIZED = "Initialized"
    WAITING = "Waiting"
    PROGRESSING = "Progressing"
    WAITING_PROMOTION = "WaitingPromotion"
    PROMOTING = "Promoting"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"


#: Phases in which a release is under way (traffic may reach the canary).
RUNNING_PHASES = frozenset({Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING, Phase.FINALISING})
#: Phases in which the controller waits for a new revision.
IDLE_PHASES = frozenset({Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED})


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    NO_DATA = "NoData"
    ERROR = "Error"
    #: The metrics provider could not be reached (after retries): says nothing about the canary.
    UNAVAILABLE = "Unavailable"


class CheckKind(StrEnum):
    METRIC = "metric"
    WEBHOOK = "webhook"
    JUDGE = "judge"  # the canary compared with the primary (spec.analysis.judge)


@dataclass(frozen=True)
class CheckResult:
    """One check of one analysis tick, exactly as shown to users in status and events."""

    name: str
    kind: CheckKind
    source: str  # the rendered query, or the webhook URL
    verdict: Verdict
    time: datetime
    value: float | None = None
    min: float | None = None
    max: float | None = None
    samples: float | None = None
    message: str = ""
    #: Judge checks only: the primary's value and requests over the same window, the evidence
    #: against the canary (an e-value: how many times likelier the data are if the canary is
    #: worse), and the evidence that rolls it back.
    primary_value: float | None = None
    primary_samples: float | None = None
    evidence: float | None = None
    evidence_bound: float | None = None

    def with_verdict(self, verdict: Verdict, message: str, value: float | None = None) -> CheckResult:
        return replace(self, verdict=verdict, message=message, value=value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind.value,
            "source": self.source,
            "verdict": self.verdict.value,
            "time": format_time(self.time),
        }
        for key, val in (("value", self.value), ("min", self.min), ("max", self.max), ("samples", self.samples),
                         ("primaryValue", self.primary_value), ("primarySamples", self.primary_samples),
                         ("evidence", self.evidence), ("evidenceBound", self.evidence_bound)):
            if val is not None:
                out[key] = _wire_number(val)
        if self.message:
            out["message"] = self.message
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CheckResult:
        return cls(
            name=str(raw.get("name", "")),
            kind=CheckKind(raw.get("kind", CheckKind.METRIC.value)),
            source=str(raw.get("source", "")),
            verdict=Verdict(raw.get("verdict", Verdict.ERROR.value)),
            time=parse_time(raw.get("time")) or datetime.fromtimestamp(0, timezone.utc),
            value=_opt_float(raw.get("value")),
            min=_opt_float(raw.get("min")),
            max=_opt_float(raw.get("max")),
            samples=_opt_float(raw.get("samples")),
            message=str(raw.get("message", "")),
            primary_value=_opt_float(raw.get("primaryValue")),
            primary_samples=_opt_float(raw.get("primarySamples")),
            evidence=_opt_float(raw.get("evidence")),
            evidence_bound=_opt_float(raw.get("evidenceBound")),
        )


@dataclass(frozen=True)
class JudgeState:
    """What the judge carries from one step to the next (see docs/analysis.md, "The judge").

    The evidence of a step is recomputed from counts since ``step_started`` at every look; when
    the weight moves, the step's final log-evidence joins ``carried`` and a new step begins.
    """

    step_started: datetime | None = None
    last_look: datetime | None = None
    #: Log-evidence of the completed steps of this run, by test (latency).
    carried: Mapping[str, float] = field(default_factory=dict)
    #: The error test's completed steps: (canary failures, primary failures, canary requests,
    #: primary requests). Its evidence is one mixture over the whole run, so it keeps counts.
    error_steps: tuple[tuple[float, float, float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "stepStarted": format_time(self.step_started),
            "lastLook": format_time(self.last_look),
            "carried": {name: _wire_number(value) for name, value in self.carried.items()},
            "errorSteps": [{"canaryFailures": _wire_number(x), "primaryFailures": _wire_number(y),
                            "canaryRequests": _wire_number(n_c), "primaryRequests": _wire_number(n_p)}
                           for x, y, n_c, n_p in self.error_steps],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> JudgeState:
        raw = raw or {}
        return cls(
            step_started=parse_time(raw.get("stepStarted")),
            last_look=parse_time(raw.get("lastLook")),
            carried={str(k): float(str(v)) for k, v in (raw.get("carried") or {}).items()},
            error_steps=tuple(
                (_number(s, "canaryFailures"), _number(s, "primaryFailures"), _number(s, "canaryRequests"),
                 _number(s, "primaryRequests")) for s in raw.get("errorSteps") or []),
        )


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    PROMOTED = "Promoted"


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: bool
    reason: str
    message: str
    last_transition_time: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "status": "True" if self.status else "False",
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": format_time(self.last_transition_time),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Condition:
        return cls(
            type=ConditionType(raw["type"]),
            status=raw.get("status") == "True",
            reason=str(raw.get("reason", "")),
            message=str(raw.get("message", "")),
            last_transition_time=parse_time(raw.get("lastTransitionTime")) or datetime.fromtimestamp(0, timezone.utc),
        )


class Annotation(StrEnum):
    """On-call annotations on the Canary; the controller reads them and never writes them."""

    ROLLBACK = "canary.dev/rollback"
    PROMOTE = "canary.dev/promote"
    PAUSE = "canary.dev/pause"
    RETRY = "canary.dev/retry"

    @property
    def short(self) -> str:
        return self.value.split("/", 1)[1]


@dataclass(frozen=True)
class CanaryStatus:
    phase: Phase | None = None
    canary_weight: int = 0
    failed_checks: int = 0
    #: Ticks in a row in which a metrics provider was unavailable (see consecutiveErrorLimit).
    consecutive_errors: int = 0
    #: Ticks in a row in which a metric check had no data (see consecutiveNoDataLimit).
    consecutive_no_data: int = 0
    iterations: int = 0
    #: Revision (checksum of pod template + tracked config) the controller last started with.
    last_applied_spec: str = ""
    #: Revision the primary runs.
    last_promoted_spec: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int = 0
    checks: tuple[CheckResult, ...] = ()
    conditions: tuple[Condition, ...] = ()
    #: When the analysis last ran; the next tick is due one interval later.
    last_analysis_time: datetime | None = None
    #: When the controller started waiting for a workload to become ready (progress deadline).
    waiting_since: datetime | None = None
    #: When the current run started (for run-duration metrics and `canary status`).
    run_started: datetime | None = None
    #: Annotation values already acted on, by short name (rollback, promote, pause, retry).
    handled_annotations: Mapping[str, str] = field(default_factory=dict)
    #: Replicas the primary had when the run began; the canary is scaled to the same.
    primary_replicas: int = 0
    #: Why the last run ended (rollback reason, or "promoted").
    message: str = ""
    judge: JudgeState = field(default_factory=JudgeState)

    def with_(self, **changes: Any) -> CanaryStatus:
        return replace(self, **changes)

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type is kind), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.phase.value if self.phase else None,
            "canaryWeight": self.canary_weight,
            "failedChecks": self.failed_checks,
            "consecutiveErrors": self.consecutive_errors,
            "consecutiveNoData": self.consecutive_no_data,
            "iterations": self.iterations,
            "lastAppliedSpec": self.last_applied_spec,
            "lastPromotedSpec": self.last_promoted_spec,
            "lastTransitionTime": format_time(self.last_transition_time),
            "observedGeneration": self.observed_generation,
            "checks": [c.to_dict() for c in self.checks],
            "conditions": [c.to_dict() for c in self.conditions],
            "lastAnalysisTime": format_time(self.last_analysis_time),
            "waitingSince": format_time(self.waiting_since),
            "runStarted": format_time(self.run_started),
            "handledAnnotations": dict(self.handled_annotations),
            "primaryReplicas": self.primary_replicas,
            "message": self.message,
            "judge": self.judge.to_dict(),
        }
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> CanaryStatus:
        raw = raw or {}
        phase_raw = raw.get("phase")
        return cls(
            phase=Phase(str(phase_raw)) if phase_raw in Phase._value2member_map_ else None,
            canary_weight=int(raw.get("canaryWeight") or 0),
            failed_checks=int(raw.get("failedChecks") or 0),
            consecutive_errors=int(raw.get("consecutiveErrors") or 0),
            consecutive_no_data=int(raw.get("consecutiveNoData") or 0),
            iterations=int(raw.get("iterations") or 0),
            last_applied_spec=str(raw.get("lastAppliedSpec") or ""),
            last_promoted_spec=str(raw.get("lastPromotedSpec") or ""),
            last_transition_time=parse_time(raw.get("lastTransitionTime")),
            observed_generation=int(raw.get("observedGeneration") or 0),
            checks=tuple(CheckResult.from_dict(c) for c in raw.get("checks") or []),
            conditions=tuple(
                Condition.from_dict(c) for c in raw.get("conditions") or [] if c.get("type") in ConditionType._value2member_map_
            ),
            last_analysis_time=parse_time(raw.get("lastAnalysisTime")),
            waiting_since=parse_time(raw.get("waitingSince")),
            run_started=parse_time(raw.get("runStarted")),
            handled_annotations={str(k): str(v) for k, v in (raw.get("handledAnnotations") or {}).items()},
            primary_replicas=int(raw.get("primaryReplicas") or 0),
            message=str(raw.get("message") or ""),
            judge=JudgeState.from_dict(raw.get("judge")),
        )


def format_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def _number(raw: Mapping[str, Any], key: str) -> float:
    return float(str(raw.get(key, 0)))


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    return float(str(value))


def _wire_number(value: float) -> str:
    # Status numbers are strings: NaN and infinities are not JSON, and the API server would
    # reject them; strings also keep the CRD schema simple (type: string).
    if not math.isfinite(value) or value != int(value) or abs(value) > 2**53:
        return repr(float(value))
    return str(int(value))
