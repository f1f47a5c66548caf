"""Repeated Events folded into one: a count and a last time, as Kubernetes' recorder does.

A Canary held at a closed gate says "confirm-traffic-increase webhook holds the weight at 10%"
on every tick. Each of those as an Event of its own is an API write per Canary per tick and a
``kubectl describe`` full of copies. Instead, an Event that repeats the last one this Canary
recorded (same reason, type and message, facts equal but for time and measured values:
:func:`canary.domain.quiet.facts_repeat`) is counted in memory and written into the existing
Event (``count`` and ``lastTimestamp``, core/v1 semantics) when the reconciler next writes, at
the latest with the coalesced status write (``quiet_status``).

The folded Event's ``canary.dev/facts`` annotation describes the *latest* occurrence, like its
``lastTimestamp``: since only consecutive repeats are folded, the Event still sits between its
neighbours on ``canary report``'s timeline (its phase and weight are those of every occurrence),
and the checks it shows are the last ones measured before anything changed. ``firstTimestamp``
keeps when the series began. What is lost are the check values of the occurrences in between,
and, if the controller dies before a fold is written, up to N-1 counts of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.domain.quiet import facts_repeat
from canary.kube.events import EventGone, KubernetesEvents
from canary.notify.base import Notice

__all__ = ["EventSeries"]


@dataclass(frozen=True)
class _Last:
    #: The stored Event's name; None when creating it failed (a repeat then creates one).
    name: str | None
    first: Notice
    latest: Notice
    #: Occurrences in all, and how many of them the stored Event says.
    count: int
    stored: int

    def repeated_by(self, notice: Notice) -> bool:
        latest = self.latest
        return (notice.reason, notice.message, notice.warning, notice.uid) == (
            latest.reason, latest.message, latest.warning, latest.uid) and facts_repeat(latest.facts, notice.facts)


class EventSeries:
    """The last Event recorded about one Canary, kept by its reconciler."""

    def __init__(self) -> None:
        self._last: _Last | None = None

    @property
    def unwritten(self) -> int:
        """Occurrences counted but not yet written."""
        return 0 if self._last is None else self._last.count - self._last.stored

    async def record(self, events: KubernetesEvents, notice: Notice) -> None:
        """A repeat of the last Event is counted (written by :meth:`flush`); anything else
        flushes the count of the last one and becomes a new Event. Raises DeliveryError."""
        last = self._last
        if last is not None and last.repeated_by(notice):
            self._last = _Last(last.name, last.first, notice, last.count + 1, last.stored)
            return
        await self.flush(events)
        # Remembered before the write: a failed create still starts the series, so its repeats
        # create the Event instead of each being posted again.
        self._last = _Last(None, notice, notice, 1, 0)
        name = await events.create(notice)
        self._last = _Last(name, notice, notice, 1, 1)

    async def flush(self, events: KubernetesEvents) -> None:
        """Write the occurrences counted since the last write into the Event. Raises
        DeliveryError; the count is then given up, not retried on every pass."""
        last = self._last
        if last is None or last.count == last.stored:
            return
        self._last = _Last(last.name, last.first, last.latest, last.count, last.count)
        if last.name is not None:
            try:
                await events.fold(last.name, last.latest, last.count)
                return
            except EventGone:
                pass
        # The Event expired or was never created: the occurrences since get one of their own.
        unwritten = last.count - last.stored
        name = await events.create(last.latest, count=unwritten,
                                   first=last.first.time if last.stored == 0 else None)
        self._last = _Last(name, last.first, last.latest, unwritten, unwritten)
