"""The on-call commands: rollback, promote, pause, resume, retry.

Each writes one annotation on the Canary with a JSON merge patch, exactly what
``kubectl annotate`` would do, so the CLI is a convenience and never a requirement. It then waits
for the controller's receipt: ``status.handledAnnotations[<short name>]`` equal to the value
written (for resume: the ``pause`` entry gone). Without a receipt nothing happened, however
the annotation looks, so a missing receipt is reported as such (exit 2).

The controller acts on a *changed* value, so one-shot requests (rollback, retry) write a value
that differs from the one it last handled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, TextIO

from canary.cli.client import CanaryClient
from canary.cli.errors import ExitCode, UsageError
from canary.cli.follow import follow
from canary.cli.render import format_age, read_status
from canary.domain.status import Annotation

__all__ = ["Action", "Request", "annotate", "is_confirmed", "request_for"]


class Action(StrEnum):
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    PAUSE = "pause"
    RESUME = "resume"
    RETRY = "retry"


@dataclass(frozen=True)
class Request:
    annotation: Annotation
    #: None removes the annotation.
    value: str | None

    def describe(self) -> str:
        if self.value is None:
            return f"removal of {self.annotation.value}"
        return f"{self.annotation.value}={self.value}"


def _timestamp(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def request_for(
    action: Action,
    *,
    now: datetime,
    user: str,
    reason: str | None = None,
    handled: Mapping[str, str] | None = None,
) -> Request:
    """The annotation change for ``action``. Pure.

    ``handled`` is the Canary's ``status.handledAnnotations``: a rollback whose reason equals
    the one already handled gets a timestamp, or the controller would take it as old news.
    """
    handled = handled or {}
    if action is Action.ROLLBACK:
        text = (reason if reason is not None else f"requested by {user} with the canary CLI").strip()
        if not text:
            raise UsageError("--reason must not be empty: it is recorded as why the release was rolled back")
        if handled.get(Annotation.ROLLBACK.short) == text:
            text = f"{text} ({_timestamp(now)})"
        return Request(Annotation.ROLLBACK, text)
    if action is Action.PROMOTE:
        # The controller acts once per value: a "true" it already handled (an earlier release)
        # would be ignored, so a later promote writes a fresh value instead.
        if handled.get(Annotation.PROMOTE.short) == "true":
            return Request(Annotation.PROMOTE, _timestamp(now))
        return Request(Annotation.PROMOTE, "true")
    if action is Action.PAUSE:
        return Request(Annotation.PAUSE, "true")
    if action is Action.RESUME:
        return Request(Annotation.PAUSE, None)
    return Request(Annotation.RETRY, _timestamp(now))


def is_confirmed(obj: Mapping[str, Any], request: Request) -> bool:
    """Whether the controller's receipt for ``request`` is in the Canary's status. Pure."""
    handled = read_status(obj).handled_annotations
    short = request.annotation.short
    if request.value is None:
        return short not in handled
    return handled.get(short) == request.value


def annotate(
    client: CanaryClient,
    namespace: str,
    name: str,
    action: Action,
    *,
    reason: str | None,
    wait: bool,
    timeout: float,
    user: str,
    out: TextIO,
    err: TextIO,
    clock: Callable[[], float],
    now: Callable[[], datetime],
) -> int:
    """Write the annotation for ``action`` and (unless ``wait`` is False) await the receipt."""
    current = client.get(namespace, name)
    request = request_for(action, now=now(), user=user, reason=reason,
                          handled=read_status(current).handled_annotations)
    patched = client.patch_annotations(namespace, name, {request.annotation.value: request.value})
    target = f"{namespace}/{name}"
    if not wait:
        print(f"{target}: wrote {request.describe()}; not waiting for the controller", file=out)
        return ExitCode.OK

    confirmed = follow(client, namespace, name, until=lambda obj: is_confirmed(obj, request),
                       timeout=timeout, clock=clock, initial=patched)
    if confirmed is None:
        print(
            f"{target}: the controller did not confirm {request.describe()} within "
            f"{format_age(timedelta(seconds=timeout))} (no receipt in status.handledAnnotations."
            f"{request.annotation.short}). Is the canary controller running, and does it watch namespace {namespace}?",
            file=err,
        )
        return ExitCode.TIMEOUT
    phase = read_status(confirmed).phase
    print(f"{target}: controller confirmed {request.describe()}; phase {phase.value if phase else 'Unknown'}",
          file=out)
    return ExitCode.OK
