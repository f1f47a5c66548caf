"""The notifier port: one thing that happened to a Canary, told to one destination.

Kubernetes Events, ``event`` webhooks and chat alerts all implement :class:`Notifier`; what
differs is only where a :class:`Notice` goes and in which wire format. A notifier raises
:class:`~canary.errors.DeliveryError` when the destination did not take the notice, and
:class:`~canary.notify.outbox.Outbox` decides about retries, pacing and giving up, so that no
notifier can stall a release.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from canary.domain.alerts import Severity
from canary.domain.event_facts import EventFacts

__all__ = ["Notice", "Notifier"]


@dataclass(frozen=True)
class Notice:
    namespace: str
    name: str
    #: The Event's reason (``RolledBack``) and the sentence written for people.
    reason: str
    message: str
    warning: bool
    #: Phase, weight and checks when it happened: what every notifier renders from.
    facts: EventFacts
    time: datetime
    #: The Canary's uid, so an Event attaches to this Canary and not a namesake created later.
    uid: str | None = None
    #: The alert severity (chat alerts only); None for notices that are not alerts.
    severity: Severity | None = None

    @property
    def canary(self) -> str:
        return f"{self.namespace}/{self.name}"


class Notifier(Protocol):
    """Tells one destination about a :class:`Notice`."""

    #: Names the kind of destination in logs and in ``canary_notifications_dropped_total``
    #: (``slack``, ``webhook``, ``kubernetes``): a bounded set, never an address.
    @property
    def system(self) -> str: ...

    #: Notices to one destination are posted in order and paced; this key says which
    #: notifiers share a destination (an address, never logged: it may hold a token).
    @property
    def destination(self) -> str: ...

    #: Posts tried in all before the notice is dropped (1: no retry).
    @property
    def attempts(self) -> int: ...

    async def post(self, notice: Notice) -> None:
        """Deliver ``notice`` once; raise DeliveryError if it was not accepted."""
        ...
