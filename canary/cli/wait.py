"""``canary wait``: block a CI job until a Canary's release ends, and say how, by exit code.

Without ``--revision`` the phase alone decides, so a Canary still in ``Succeeded`` from the
*previous* release satisfies ``--for succeeded`` at once, before the controller has even noticed
the new Deployment. ``--revision`` (the value the controller reports as ``lastAppliedSpec``,
shown as "Revision" by ``canary status``) removes that ambiguity: only an outcome for that
revision counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import Enum, StrEnum, auto
from typing import Any, TextIO

from canary.cli.client import CanaryClient
from canary.cli.errors import ExitCode
from canary.cli.follow import follow
from canary.cli.render import format_age, qualified_name, read_status, summary_line
from canary.domain.status import IDLE_PHASES, CanaryStatus, Phase

__all__ = ["Goal", "Outcome", "evaluate", "wait_for"]


class Goal(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Another name for succeeded, for scripts that read better with it.
    PROMOTED = "promoted"


class Outcome(Enum):
    PENDING = auto()
    REACHED = auto()
    #: The release ended the other way.
    OPPOSITE = auto()
    #: The awaited revision was replaced by a newer one before it ended.
    SUPERSEDED = auto()


def evaluate(status: CanaryStatus, goal: Goal, revision: str | None = None, *, seen_revision: bool = False) -> Outcome:
    """Where a release stands for someone waiting on ``goal``. Pure.

    ``seen_revision`` says whether an earlier state already showed ``revision`` as applied;
    only then does a different ``lastAppliedSpec`` mean the revision was superseded (before,
    it is the previous release).
    """
    wants_success = goal is not Goal.FAILED
    if revision is None:
        if status.phase is Phase.SUCCEEDED:
            return Outcome.REACHED if wants_success else Outcome.OPPOSITE
        if status.phase is Phase.FAILED:
            return Outcome.OPPOSITE if wants_success else Outcome.REACHED
        return Outcome.PENDING

    # The primary serves the revision and nothing is under way: it was promoted (or it was the
    # revision the Canary started with, or a revert to it, which start no analysis at all).
    if status.last_promoted_spec == revision and status.phase in IDLE_PHASES:
        return Outcome.REACHED if wants_success else Outcome.OPPOSITE
    if status.last_applied_spec == revision:
        if status.phase is Phase.SUCCEEDED:
            return Outcome.REACHED if wants_success else Outcome.OPPOSITE
        if status.phase is Phase.FAILED:
            return Outcome.OPPOSITE if wants_success else Outcome.REACHED
        return Outcome.PENDING
    if seen_revision and status.last_applied_spec:
        return Outcome.SUPERSEDED
    return Outcome.PENDING


def wait_for(
    client: CanaryClient,
    namespace: str,
    name: str,
    goal: Goal,
    *,
    timeout: float,
    revision: str | None,
    out: TextIO,
    err: TextIO,
    clock: Callable[[], float],
    now: Callable[[], datetime],
) -> int:
    """Follow the Canary, printing a line per phase or weight change; return the exit code."""
    seen_revision = False
    last_line = ""
    result = Outcome.PENDING
    latest: Mapping[str, Any] = {}

    def settled(obj: Mapping[str, Any]) -> bool:
        nonlocal seen_revision, last_line, result, latest
        latest = obj
        status = read_status(obj)
        line = summary_line(obj)
        if line != last_line:
            print(f"{now():%H:%M:%SZ} {line}", file=out, flush=True)
            last_line = line
        result = evaluate(status, goal, revision, seen_revision=seen_revision)
        seen_revision = seen_revision or (revision is not None and status.last_applied_spec == revision)
        return result is not Outcome.PENDING

    follow(client, namespace, name, until=settled, timeout=timeout, clock=clock)
    status = read_status(latest)
    phase = status.phase.value if status.phase else "Unknown"
    target = qualified_name(latest)
    if result is Outcome.REACHED:
        print(f"{target} is {goal.value} (phase {phase})", file=out)
        return ExitCode.OK
    if result is Outcome.OPPOSITE:
        why = f": {status.message}" if status.message else ""
        print(f"{target} ended {phase}, not {goal.value}{why}", file=err)
        return ExitCode.OPPOSITE
    if result is Outcome.SUPERSEDED:
        print(f"{target}: revision {revision} was superseded by {status.last_applied_spec} before it finished",
              file=err)
        return ExitCode.OPPOSITE
    waited = format_age(timedelta(seconds=timeout))
    print(f"timed out after {waited} waiting for {target} to be {goal.value} (phase {phase})", file=err)
    return ExitCode.TIMEOUT
