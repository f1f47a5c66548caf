"""Leader election over a ``coordination.k8s.io/v1`` Lease, for running replicas side by side.

Only the replica holding the Lease may act on Canaries: two replicas stepping the same Canary
would double every weight step (Flagger #1613).

Why not ``kubernetes.leaderelection``: it sleeps in threads with ``time.sleep``, calls
``sys.exit`` on a bad configuration, never releases the Lease on shutdown (a successor waits a
whole lease duration), does not count ``leaseTransitions``, takes whole seconds only, and builds
its own ``CoordinationV1Api`` so it cannot be given a fake. The rules below are the ones
client-go follows. The loop runs in a thread of its own (see :meth:`LeaderElector.run_blocking`)
and proves leadership to writers through a :class:`~canary.kube.fence.LeaseGuard`.

The rules:

* A Lease is free when it does not exist, has no holder, or its record (holder, renewTime,
  transitions) has not changed for ``leaseDurationSeconds`` *as measured by our own monotonic
  clock since we first saw that record*. Comparing the holder's ``renewTime`` with our wall
  clock would let clock skew between nodes hand the Lease to two replicas at once.
* Taking the Lease from someone else (or from nobody) sets ``acquireTime`` and adds one to
  ``leaseTransitions``; renewing keeps both and moves ``renewTime``.
* Every write carries the ``resourceVersion`` that was read, so of two candidates writing at the
  same time the API server accepts one and answers the other with 409 Conflict.
* The leader stops leading once it has not renewed for ``renew_deadline``, which is shorter
  than the lease duration: it gives up before any other replica may consider the Lease free.
  The guard applies the same deadline to every write, measured from the start of the last
  accepted renewal, so a process frozen past it writes nothing when it resumes.

Errors::

    CanaryError
    └── LeaderElectionError     settings that cannot work (durations out of order)
        └── LeadershipLost      renewal failed past the renew deadline, or another holder won
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import os
import random
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum, auto
from typing import Any, Protocol

import structlog
import urllib3.exceptions
from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from canary.config import LeaderElectionSettings
from canary.errors import CanaryError
from canary.kube.fence import LeaseGuard, lease_clock

__all__ = [
    "LeaderElectionError",
    "LeaderElector",
    "LeadershipLost",
    "LeaseApi",
    "LeaseRecord",
    "TRANSIENT_ERRORS",
    "default_identity",
    "guard_for",
    "hold_leadership",
]

log = structlog.get_logger(__name__)

_CONFLICT = 409
_NOT_FOUND = 404
# Failures worth retrying within the renew deadline: the API server answered with an error, or
# could not be reached at all.
TRANSIENT_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)
_TRANSIENT = TRANSIENT_ERRORS


class LeaderElectionError(CanaryError):
    """Leader election cannot work with these settings."""


class LeadershipLost(LeaderElectionError):
    """This replica no longer holds the Lease; whatever it guards must stop now."""


class LeaseApi(Protocol):
    """The three calls of ``kubernetes.client.CoordinationV1Api`` that election needs."""

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> Any: ...

    def create_namespaced_lease(self, namespace: str, body: Any, **kwargs: Any) -> Any: ...

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class LeaseRecord:
    """The election fields of a Lease's spec."""

    holder: str | None
    duration_seconds: int | None
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int

    @classmethod
    def from_lease(cls, lease: Any) -> LeaseRecord:
        spec = getattr(lease, "spec", None)
        if spec is None:
            return cls(None, None, None, None, 0)
        return cls(
            holder=spec.holder_identity or None,
            duration_seconds=spec.lease_duration_seconds,
            acquire_time=spec.acquire_time,
            renew_time=spec.renew_time,
            transitions=spec.lease_transitions or 0,
        )


class _Outcome(Enum):
    HELD = auto()  # we hold the Lease now (acquired or renewed)
    HELD_BY_OTHER = auto()  # someone else holds a live Lease
    CONFLICT = auto()  # our write lost a race (409)
    ERROR = auto()  # the API server failed or was unreachable


def default_identity() -> str:
    """Pod name (the hostname in a Pod) plus pid, so two processes in one Pod differ too."""
    return f"{socket.gethostname()}_{os.getpid()}"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _micro_time(value: datetime) -> datetime:
    # The client serialises datetimes with isoformat(), which drops the fraction when it is
    # zero; the API server parses Lease times as MicroTime and rejects a time without one.
    value = value.astimezone(timezone.utc)
    return value if value.microsecond else value.replace(microsecond=1)


class LeaderElector:
    """Acquires, renews and releases one Lease for one identity.

    ``try_acquire_or_renew`` and ``release`` block (one or two API calls); :meth:`run_blocking`
    is the loop around them and :meth:`run` starts it in its own thread for asyncio callers.
    ``clock`` (monotonic seconds, shared with ``guard``) and ``now`` (wall time written to the
    Lease) are parameters so tests can move time by hand.
    """

    def __init__(
        self,
        settings: LeaderElectionSettings,
        api: LeaseApi,
        *,
        identity: str | None = None,
        clock: Callable[[], float] = lease_clock,
        now: Callable[[], datetime] = _utc_now,
        guard: LeaseGuard | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        lease_s = settings.lease_duration.total_seconds()
        renew_s = settings.renew_deadline.total_seconds()
        retry_s = settings.retry_period.total_seconds()
        if not lease_s > renew_s > retry_s > 0:
            raise LeaderElectionError(
                f"need lease_duration ({lease_s}s) > renew_deadline ({renew_s}s) > retry_period ({retry_s}s) > 0"
            )
        self._settings = settings
        self._api = api
        self.identity = identity or settings.identity or default_identity()
        self._clock = clock
        self._now = now
        self._lease_s = lease_s
        self._renew_s = renew_s
        self._retry_s = retry_s
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._leading = False
        self.guard = guard or LeaseGuard(clock)
        #: When the last accepted renewal (or the acquisition) was started, on ``clock``.
        self._last_renewal = -math.inf
        # Set once leadership was declared lost: a renewal still running in its thread after the
        # deadline must not make this elector look like a leader again.
        self._abandoned = False
        #: Put on the Lease when this elector creates it (shard Leases are listed by label).
        self._labels = dict(labels or {})

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def lease_name(self) -> str:
        return self._settings.lease_name

    def observe(self, record: LeaseRecord, seen_at: float) -> None:
        """Take in a record of this Lease that was read elsewhere (a list of all shard Leases),
        first seen at ``seen_at`` on ``clock``. An elector made fresh for one attempt would
        otherwise start counting the holder's lease duration only at its own first read, and
        wait a whole duration more before it may take an expired Lease."""
        if record != self._observed:
            self._observed, self._observed_at = record, seen_at

    # --- one attempt (blocking) ----------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One attempt to take or keep the Lease; True when we hold it afterwards."""
        return self._attempt(self._clock() + self._retry_s) is _Outcome.HELD

    def _timeout(self, deadline: float) -> float:
        # Every call is bounded so a hung connection cannot hold the loop past the deadline.
        return max(deadline - self._clock(), 0.001)

    def _attempt(self, deadline: float) -> _Outcome:
        name, namespace = self._settings.lease_name, self._settings.lease_namespace
        started = self._clock()
        try:
            lease = self._api.read_namespaced_lease(name, namespace, _request_timeout=self._timeout(deadline))
        except ApiException as exc:
            if exc.status == _NOT_FOUND:
                return self._create(name, namespace, started, deadline)
            log.warning("lease read failed", lease=name, namespace=namespace, status=exc.status, reason=exc.reason)
            return _Outcome.ERROR
        except _TRANSIENT as exc:
            log.warning("lease read failed", lease=name, namespace=namespace, error=str(exc))
            return _Outcome.ERROR

        record = LeaseRecord.from_lease(lease)
        self._observe(record)
        if record.holder and record.holder != self.identity and not self._expired(record):
            self._leading = False
            return _Outcome.HELD_BY_OTHER

        now = _micro_time(self._now())
        ours = record.holder == self.identity
        wanted = LeaseRecord(
            holder=self.identity,
            duration_seconds=self._duration_seconds(),
            acquire_time=(record.acquire_time or now) if ours else now,
            renew_time=now,
            transitions=record.transitions if ours else record.transitions + 1,
        )
        body = copy.deepcopy(lease)
        body.spec = _spec(wanted, body.spec)
        try:
            self._api.replace_namespaced_lease(name, namespace, body, _request_timeout=self._timeout(deadline))
        except ApiException as exc:
            if exc.status == _CONFLICT:
                log.info("lease write lost a race", lease=name, namespace=namespace)
                return _Outcome.CONFLICT
            log.warning("lease write failed", lease=name, namespace=namespace, status=exc.status, reason=exc.reason)
            return _Outcome.ERROR
        except _TRANSIENT as exc:
            log.warning("lease write failed", lease=name, namespace=namespace, error=str(exc))
            return _Outcome.ERROR
        if not ours:
            log.info("acquired lease", lease=name, namespace=namespace, identity=self.identity,
                     previous=record.holder, transitions=wanted.transitions)
        return self._held(wanted, started)

    def _create(self, name: str, namespace: str, started: float, deadline: float) -> _Outcome:
        now = _micro_time(self._now())
        wanted = LeaseRecord(self.identity, self._duration_seconds(), now, now, 0)
        body = V1Lease(metadata=V1ObjectMeta(name=name, namespace=namespace, labels=self._labels or None),
                       spec=_spec(wanted, None))
        try:
            self._api.create_namespaced_lease(namespace, body, _request_timeout=self._timeout(deadline))
        except ApiException as exc:
            if exc.status == _CONFLICT:  # AlreadyExists: another candidate created it first
                return _Outcome.CONFLICT
            log.warning("lease create failed", lease=name, namespace=namespace, status=exc.status, reason=exc.reason)
            return _Outcome.ERROR
        except _TRANSIENT as exc:
            log.warning("lease create failed", lease=name, namespace=namespace, error=str(exc))
            return _Outcome.ERROR
        log.info("created lease", lease=name, namespace=namespace, identity=self.identity)
        return self._held(wanted, started)

    def _held(self, record: LeaseRecord, started: float) -> _Outcome:
        self._observed, self._observed_at = record, self._clock()
        self._leading = not self._abandoned
        if self._leading:
            # Others count the lease duration from when they saw this write, which is after
            # ``started``: measuring our own deadline from ``started`` errs on the safe side.
            self._last_renewal = max(self._last_renewal, started)
            self.guard.extend(started + self._renew_s)
        return _Outcome.HELD

    def _observe(self, record: LeaseRecord) -> None:
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()

    def _expired(self, record: LeaseRecord) -> bool:
        duration = record.duration_seconds or self._lease_s
        return self._clock() >= self._observed_at + duration

    def _duration_seconds(self) -> int:
        return max(1, math.ceil(self._lease_s))

    def abandon(self) -> None:
        """Stop holding without releasing: the guard refuses from now on, renewals stop, and the
        Lease is left to expire (when a write checked by the guard may still be in flight)."""
        self._leading = False
        self._abandoned = True
        self.guard.revoke()

    def release(self) -> bool:
        """Give the Lease up so a successor need not wait out the lease duration.

        Only a holder releases; True when the Lease was released (or was not ours to keep).
        """
        if not self._leading:
            return True
        self._leading = False
        # Nothing may be written once the Lease is handed over.
        self.guard.revoke()
        name, namespace = self._settings.lease_name, self._settings.lease_namespace
        try:
            lease = self._api.read_namespaced_lease(name, namespace, _request_timeout=self._retry_s)
            record = LeaseRecord.from_lease(lease)
            if record.holder != self.identity:
                return True
            now = _micro_time(self._now())
            body = copy.deepcopy(lease)
            # client-go's release: no holder, a one-second duration, transitions kept.
            body.spec = _spec(LeaseRecord(None, 1, now, now, record.transitions), body.spec)
            self._api.replace_namespaced_lease(name, namespace, body, _request_timeout=self._retry_s)
        except _TRANSIENT as exc:
            log.warning("lease release failed; successors wait for it to expire", lease=name, error=str(exc))
            return False
        log.info("released lease", lease=name, namespace=namespace, identity=self.identity)
        return True

    # --- the loop (its own thread) ---------------------------------------------------------------

    def run_blocking(self, stop: threading.Event, on_leading: Callable[[], None]) -> None:
        """Wait for the Lease, call ``on_leading``, renew until ``stop`` is set, then release.

        Runs in a thread of its own, never on the event loop or in the shared worker pool: with
        a thousand Canaries those queue hundreds of API calls, and a renewal waiting behind them
        is a renewal not sent (the Lease was lost that way at 1000 Canaries). Raises
        :class:`LeadershipLost` when renewal failed past the renew deadline or another replica
        took the Lease; the guard is revoked first.
        """
        log.info("waiting for lease", lease=self._settings.lease_name, identity=self.identity)
        while not stop.is_set():
            if self.try_acquire_or_renew():
                break
            # Jitter keeps candidates that started together from colliding on every attempt.
            stop.wait(self._retry_s * (1 + 0.2 * random.random()))
        else:
            return
        on_leading()
        self.hold_blocking(stop)

    def hold_blocking(self, stop: threading.Event) -> None:
        """Renew the Lease this elector holds until ``stop`` is set, then release it.

        Raises :class:`LeadershipLost` (guard revoked first) when renewal failed past the renew
        deadline or another holder took the Lease; then nothing is released.
        """
        try:
            self._renew_until(stop)
        finally:
            if stop.is_set() and not self._abandoned:
                self.release()

    def _renew_until(self, stop: threading.Event) -> None:
        while not stop.wait(self._retry_s):
            deadline = self._last_renewal + self._renew_s
            while True:
                if self._clock() >= deadline:
                    raise self._lost(f"could not renew the lease for {self._renew_s:g}s")
                outcome = self._attempt(deadline)
                if outcome is _Outcome.HELD:
                    break
                if outcome is _Outcome.HELD_BY_OTHER:
                    holder = self._observed.holder if self._observed else None
                    raise self._lost(f"the lease is now held by {holder}")
                if stop.wait(min(self._retry_s, max(0.0, deadline - self._clock()))):
                    return

    async def run(self, leading: asyncio.Event, stop: asyncio.Event) -> None:
        """Hold the Lease with ``leading`` set until ``stop`` is set; release it then.

        Raises :class:`LeadershipLost` when renewal failed past the renew deadline or another
        replica took the Lease; ``leading`` is cleared and the guard revoked before. A renewal
        hung inside the client cannot hold this up: the guard runs out on its own clock, and
        that is reported as a loss too. Set ``stop`` only after the work that leadership guards
        has stopped: the Lease is free for others once this returns.
        """
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        stop_thread = threading.Event()

        def settle(error: BaseException | None) -> None:
            if finished.done():
                return
            if error is None:
                finished.set_result(None)
            else:
                finished.set_exception(error)

        def announce() -> None:
            loop.call_soon_threadsafe(leading.set)

        def body() -> None:
            error: BaseException | None = None
            try:
                self.run_blocking(stop_thread, announce)
            except BaseException as exc:  # noqa: BLE001 - handed to the event loop, not lost
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody listens
                loop.call_soon_threadsafe(settle, error)

        leading.clear()
        thread = threading.Thread(target=body, name=f"leader-election-{self._settings.lease_name}", daemon=True)
        thread.start()
        stopping = asyncio.ensure_future(stop.wait())
        became_leader = asyncio.ensure_future(leading.wait())
        try:
            while not finished.done():
                timeout = max(self.guard.remaining(), 0.0) + self._retry_s if leading.is_set() else None
                waited: set[asyncio.Future[Any]] = {finished, stopping}
                if not leading.is_set():
                    waited.add(became_leader)
                await asyncio.wait(waited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if stopping.done() and not stop_thread.is_set():
                    stop_thread.set()
                if leading.is_set() and not finished.done() and self.guard.remaining() <= 0 and not stopping.done():
                    # The election thread is stuck (a call that outlived its timeout): the guard
                    # already refuses every write; say so and stop leading.
                    raise self._lost("the lease renewal is stuck past the renew deadline")
            finished.result()
        finally:
            leading.clear()
            stopping.cancel()
            became_leader.cancel()

    def _lost(self, why: str) -> LeadershipLost:
        self._leading = False
        self._abandoned = True
        self.guard.revoke()
        log.error("lost leadership", lease=self._settings.lease_name, identity=self.identity, reason=why)
        return LeadershipLost(f"{self.identity} lost lease {self._settings.lease_namespace}/"
                              f"{self._settings.lease_name}: {why}")


def _spec(record: LeaseRecord, current: Any) -> Any:
    spec = copy.deepcopy(current) if current is not None else V1LeaseSpec()
    spec.holder_identity = record.holder
    spec.lease_duration_seconds = record.duration_seconds
    spec.acquire_time = record.acquire_time
    spec.renew_time = record.renew_time
    spec.lease_transitions = record.transitions
    return spec


async def hold_leadership(
    settings: LeaderElectionSettings,
    api: LeaseApi,
    leading: asyncio.Event,
    stop: asyncio.Event,
    *,
    identity: str | None = None,
    guard: LeaseGuard | None = None,
) -> None:
    """Hold the Lease while running, with ``leading`` set; see :meth:`LeaderElector.run`.
    ``guard`` (see :func:`guard_for`) is extended while the Lease is held.

    With leader election disabled every replica leads: ``leading`` is set at once and this
    returns when ``stop`` is set.
    """
    if not settings.enabled:
        leading.set()
        try:
            await stop.wait()
        finally:
            leading.clear()
        return
    await LeaderElector(settings, api, identity=identity, guard=guard).run(leading, stop)


def guard_for(settings: LeaderElectionSettings) -> LeaseGuard:
    """The guard writers check: bounded by the Lease, or always open without leader election."""
    return LeaseGuard() if settings.enabled else LeaseGuard.unbounded()

