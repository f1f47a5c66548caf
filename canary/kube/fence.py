"""The proof a writer needs before it may change the cluster: "I still hold the Lease".

Leader election alone does not stop a former leader from acting. A process frozen past its
Lease (SIGSTOP, a node freeze, a VM migration, CPU throttling) resumes with its old view and
its old belief that it leads; the election loop notices only when it next runs, and by then
other tasks of the same process may already have written. So every write asks the guard first,
in the thread that is about to send it, and the guard answers from a clock alone: the Lease is
ours until ``renew_deadline`` after the start of the last renewal the API server accepted.
Other replicas may take the Lease only ``lease_duration`` after they saw that renewal, so the
gap between the two durations is the margin for clock-rate differences and the request in
flight.

The clock is ``CLOCK_BOOTTIME`` where the platform has it: unlike ``CLOCK_MONOTONIC`` it keeps
counting while the machine is suspended, and a suspended node is exactly a node whose Lease
runs out while its processes think no time has passed.

With sharding (``canary.kube.shards``) there is one Lease, and so one guard, per hash bucket of
Canaries. The guard a write must pass is then the one of the Canary it is for: the reconciler
task of that Canary runs with :data:`WRITE_GUARD` set to its bucket's guard, and the worker
thread that sends the write (``asyncio.to_thread`` copies the context into it) checks that one.

Errors::

    CanaryError
    └── NotLeading      the guard cannot prove the Lease is held; nothing may be written
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
import time
from collections.abc import Callable, Iterator

from canary.errors import CanaryError

__all__ = ["WRITE_GUARD", "LeaseGuard", "NotLeading", "lease_clock"]


class NotLeading(CanaryError):
    """A write was refused before it was sent: this process cannot prove it holds the Lease."""


def lease_clock() -> float:
    """Seconds on a clock that never goes back and counts time the machine spent suspended."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        return time.clock_gettime(boottime)
    return time.monotonic()


class LeaseGuard:
    """Until when this process may write. Extended by each accepted renewal, revoked for good
    once leadership is lost: a process never leads twice (it exits and restarts as a follower).

    Thread-safe: the election thread extends it, the API worker threads check it.
    """

    def __init__(self, clock: Callable[[], float] = lease_clock, *, unbounded: bool = False) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._valid_until = math.inf if unbounded else -math.inf
        self._revoked = False
        self._in_flight = 0

    @classmethod
    def unbounded(cls) -> LeaseGuard:
        """For a controller running without leader election: it always leads."""
        return cls(unbounded=True)

    def extend(self, until: float) -> None:
        """The Lease is proven held until ``until`` (a reading of the guard's clock)."""
        with self._lock:
            if not self._revoked and until > self._valid_until:
                self._valid_until = until

    def revoke(self) -> None:
        """From now on nothing passes; writes already sent are :meth:`wait_drained`'s to wait for."""
        with self._lock:
            self._revoked = True
            self._valid_until = -math.inf

    @property
    def revoked(self) -> bool:
        return self._revoked

    def remaining(self) -> float:
        """Seconds the Lease is still proven held; zero or less means not at all."""
        return self._valid_until - self._clock()

    def check(self, what: str) -> float:
        """Raise :class:`NotLeading` unless the Lease is proven held; returns the seconds left."""
        left = self.remaining()
        if left <= 0:
            why = "leadership was lost" if self._revoked else "the Lease is not proven held (not renewed in time)"
            raise NotLeading(f"refusing {what}: {why}")
        return left

    @contextlib.contextmanager
    def sending(self, what: str) -> Iterator[float]:
        """Hold while one write is sent: :meth:`check` and counting it in flight are one step
        under the lock, so once :meth:`revoke` returns no new write can start, and
        :meth:`wait_drained` sees every write that started before."""
        with self._lock:
            left = self.check(what)
            self._in_flight += 1
        try:
            yield left
        finally:
            with self._lock:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._drained.notify_all()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def wait_drained(self, timeout: float) -> bool:
        """Block until no write is in flight, at most ``timeout`` seconds; True when none is.

        A bucket Lease is released only after this: a write sent just before the guard was
        revoked could otherwise reach the API server after the next holder's first one.
        """
        with self._lock:
            return self._drained.wait_for(lambda: self._in_flight == 0, timeout=timeout)


#: The guard of the Lease that covers what the current task writes (a Canary's bucket), when it
#: is not the API client's own. Set for a reconciler's task when it is created; read by
#: :func:`canary.kube.api.fenced` in the thread that sends the write.
WRITE_GUARD: contextvars.ContextVar[LeaseGuard | None] = contextvars.ContextVar("canary_write_guard", default=None)
