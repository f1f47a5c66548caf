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

from canary.domain.event_facts import EventFacts
from canary.domain.quiet import repeat_key
from canary.kube.events import EventGone, KubernetesEvents
from canary.notify.base import Notice

__all__ = ["EventSeries"]

#: What a repeat must share with the last Event: reason, message, type, the Canary's uid, and
#: the facts but for time and measured values.
_Key = tuple[str, str, bool, str | None, EventFacts]


def _key(notice: Notice) -> _Key:
    return notice.reason, notice.message, notice.warning, notice.uid, repeat_key(notice.facts)


@dataclass(frozen=True)
class _Last:
    """Kept small, for every Canary that ever recorded an Event: the latest occurrence itself
    only while it is not written yet."""

    #: The stored Event's name; None when creating it failed (a repeat then creates one).
    name: str | None
    key: _Key
    #: Occurrences in all, and how many of them the stored Event says.
    count: int
    stored: int
    #: The latest occurrence, while ``count > stored``.
    unwritten: Notice | None = None


class EventSeries:
    """The last Event recorded about one Canary, kept by its reconciler."""

    def __init__(self) -> None:
        self._last: _Last | None = None

    async def record(self, events: KubernetesEvents, notice: Notice) -> None:
        """A repeat of the last Event is counted (written by :meth:`flush`); anything else
        flushes the count of the last one and becomes a new Event. Raises DeliveryError."""
        last, key = self._last, _key(notice)
        if last is not None and last.key == key:
            self._last = _Last(last.name, key, last.count + 1, last.stored, notice)
            return
        await self.flush(events)
        # Remembered before the write: a failed create still starts the series, so its repeats
        # create the Event instead of each being posted again.
        self._last = _Last(None, key, 1, 1)
        name = await events.create(notice)
        self._last = _Last(name, key, 1, 1)

    async def flush(self, events: KubernetesEvents) -> None:
        """Write the occurrences counted since the last write into the Event. Raises
        DeliveryError; the count is then given up, not retried on every pass (the next fold
        writes the whole count)."""
        last = self._last
        if last is None or last.unwritten is None:
            return
        latest = last.unwritten
        self._last = _Last(last.name, last.key, last.count, last.count)
        if last.name is not None:
            try:
                await events.fold(last.name, latest, last.count)
                return
            except EventGone:
                pass
        # The Event expired or was never created: the occurrences since get one of their own.
        unwritten = last.count - last.stored
        name = await events.create(latest, count=unwritten)
        self._last = _Last(name, last.key, unwritten, unwritten)
