"""Quiet passes: a status that changed only in soft fields is held in memory, not written.

A pass whose decision changes nothing but soft fields (:func:`canary.domain.quiet.only_soft_changes`:
clocks and measured values whose verdicts stayed the same) does not patch the status. The
reconciler keeps the decided status here, together with the stored status it was derived from,
and the next pass decides from it as long as the stored status is still exactly that one: the
tick that was not written still happened, so ``_due`` sees its ``lastAnalysisTime`` and does not
tick again at once. Every :data:`~canary.domain.quiet.QUIET_WRITE_EVERY`-th quiet pass in a row
is written anyway, and any hard change is written at once.

The status stays the controller's only memory that counts. Anyone else's status write (another
replica, a person) makes the stored status differ from the one the overlay was derived from,
and the overlay is dropped: what the API server stores wins, as it always did.

Why losing the overlay (a crash, a restart, a shard moving) is safe: a quiet pass changed no
phase, weight, counter, revision or verdict, so the stored status it leaves behind is one the
controller really had, differing only in when the last tick or look ran and what it measured.
The next pass then finds the stored ``lastAnalysisTime`` older than it was in memory and may
evaluate at once: at most one early re-evaluation (a metric query, a gate call). That tick is
still at least one interval after the last *written* tick, which is no later than the last hard
change, so a weight is never held for less than an interval, and a failure it counts is a real
measurement of the canary. Nothing is skipped either: a tick that would have changed anything
hard is written in its own pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.domain.quiet import QUIET_WRITE_EVERY, only_soft_changes
from canary.domain.status import CanaryStatus

__all__ = ["QuietStatus"]


@dataclass(frozen=True)
class _Unwritten:
    #: The stored status ``status`` was derived from.
    base: CanaryStatus
    status: CanaryStatus
    #: Quiet passes in a row left unwritten since ``base`` was stored.
    passes: int


class QuietStatus:
    """One Canary's decided-but-unwritten status, and the rule that says when to write it."""

    def __init__(self, write_every: int = QUIET_WRITE_EVERY) -> None:
        if write_every < 1:
            raise ValueError(f"write_every must be at least 1, not {write_every}")
        self.write_every = write_every
        self._unwritten: _Unwritten | None = None

    def current(self, stored: CanaryStatus) -> CanaryStatus:
        """The status to decide from: the unwritten one while ``stored`` is still the status it
        was derived from, else ``stored`` (and the unwritten one is forgotten)."""
        if self._unwritten is not None and self._unwritten.base == stored:
            return self._unwritten.status
        self._unwritten = None
        return stored

    def must_write(self, stored: CanaryStatus, new: CanaryStatus) -> bool:
        """Whether ``new`` goes to the API server now (the writer still sends nothing when it
        equals ``stored``). False means it is kept as unwritten; the caller reports a write with
        :meth:`written`, and until then the unwritten status stays what the next pass sees."""
        if new == stored:
            self._unwritten = None
            return True
        if not only_soft_changes(stored, new):
            return True
        held = self._unwritten if self._unwritten is not None and self._unwritten.base == stored else None
        if held is not None and held.status == new:
            return False  # a pass that decided nothing new (a watch wake-up) is not a quiet pass
        passes = 1 if held is None else held.passes + 1
        if passes >= self.write_every:
            return True
        self._unwritten = _Unwritten(base=stored, status=new, passes=passes)
        return False

    def written(self) -> None:
        self._unwritten = None

    @property
    def holding(self) -> bool:
        """Whether a decided status is waiting to be written."""
        return self._unwritten is not None
