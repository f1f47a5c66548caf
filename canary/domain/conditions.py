"""kstatus conditions (Ready, Reconciling, Stalled) and Flagger's Promoted, derived from status.

GitOps tools (Flux, Argo CD, kstatus) read these rather than the phase, so they are computed
from the phase every time and never stored on their own.
"""

from __future__ import annotations

from datetime import datetime

from canary.domain.observed import Problem
from canary.domain.status import CanaryStatus, Condition, ConditionType, Phase

_RECONCILING = frozenset({
    Phase.INITIALIZING, Phase.WAITING, Phase.PROGRESSING, Phase.WAITING_PROMOTION,
    Phase.PROMOTING, Phase.FINALISING, Phase.TERMINATING,
})


def derive_conditions(
    status: CanaryStatus, now: datetime, *, problem: Problem | None = None, suspended: bool = False,
    paused: bool = False,
) -> tuple[Condition, ...]:
    phase = status.phase
    progress = f"canary weight {status.canary_weight}%, {status.failed_checks} failed checks"
    wanted: list[tuple[ConditionType, bool, str, str]] = []

    if problem is None and phase is Phase.INITIALIZING and status.message:
        # The primary missed progressDeadlineSeconds: nothing to roll back, but GitOps tools
        # must see that this will not finish on its own.
        problem = Problem("spec.targetRef.name", "PrimaryNotReady", status.message)
    if problem is not None:
        wanted.append((ConditionType.READY, False, problem.reason, problem.message))
        wanted.append((ConditionType.STALLED, True, problem.reason, problem.message))
    elif phase is Phase.FAILED:
        wanted.append((ConditionType.READY, False, "Failed", status.message or "the release was rolled back"))
        wanted.append((ConditionType.STALLED, True, "RolledBack",
                       (status.message or "the release was rolled back") + "; push a new revision or retry"))
    else:
        ready = phase in (Phase.INITIALIZED, Phase.SUCCEEDED)
        wanted.append((ConditionType.READY, ready, phase.value if phase else "Pending",
                       "the primary runs the latest revision" if ready else f"{phase or 'Pending'}: {progress}"))
        wanted.append((ConditionType.STALLED, False, "Progressing" if not ready else "Ready", ""))

    if suspended:
        wanted.append((ConditionType.RECONCILING, False, "Suspended", "spec.suspend is true"))
    elif paused and phase in _RECONCILING and problem is None:
        wanted.append((ConditionType.RECONCILING, True, "Paused",
                       f"paused by the canary.dev/pause annotation at {status.canary_weight}%"))
    elif phase in _RECONCILING and problem is None:
        wanted.append((ConditionType.RECONCILING, True, phase.value if phase else "Pending", progress))
    else:
        wanted.append((ConditionType.RECONCILING, False, phase.value if phase else "Pending", ""))

    if phase in (Phase.SUCCEEDED, Phase.INITIALIZED):
        wanted.append((ConditionType.PROMOTED, True, phase.value, "the primary runs the promoted revision"))
    elif phase is Phase.FAILED:
        wanted.append((ConditionType.PROMOTED, False, "Failed", status.message))
    else:
        wanted.append((ConditionType.PROMOTED, False, phase.value if phase else "Pending", "a release is under way"))

    out = []
    for kind, value, reason, message in wanted:
        previous = status.condition(kind)
        since = previous.last_transition_time if previous is not None and previous.status == value else now
        out.append(Condition(kind, value, reason, message, since))
    return tuple(out)
