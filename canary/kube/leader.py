"""Leader election over a ``coordination.k8s.io/v1`` Lease, for running replicas side by side.

Only the replica holding the Lease may act on Canaries: two replicas stepping the same Canary
would double every weight step (Flagger #1613).

Why not ``kubernetes.leaderelection``: it sleeps in threads with ``time.sleep``, calls
``sys.exit`` on a bad configuration, never releases the Lease on shutdown (a successor waits a
whole lease duration), does not count ``leaseTransitions``, takes whole seconds only, and builds
its own ``CoordinationV1Api`` so it cannot be given a fake. The rules below are the ones
client-go follows, written for asyncio; each blocking API call runs in ``asyncio.to_thread``.

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

Errors::

    CanaryError
    └── LeaderElectionError     settings that cannot work (durations out of order)
        └── LeadershipLost      renewal failed past the renew deadline, or another holder won
"""

from __future__ import annotations

import asyncio
import copy
import math
import os
import random
import socket
import time
from collections.abc import Callable
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

__all__ = [
    "LeaderElectionError",
    "LeaderElector",
    "LeadershipLost",
    "LeaseApi",
    "LeaseRecord",
    "default_identity",
    "hold_leadership",
]

log = structlog.get_logger(__name__)

_CONFLICT = 409
_NOT_FOUND = 404
# Failures worth retrying within the renew deadline: the API server answered with an error, or
# could not be reached at all.
_TRANSIENT = (ApiException, urllib3.exceptions.HTTPError, OSError)


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

    ``try_acquire_or_renew`` and ``release`` block (one or two API calls); :meth:`run` is the
    asyncio loop around them. ``clock`` (monotonic seconds) and ``now`` (wall time written to
    the Lease) are parameters so tests can move time by hand.
    """

    def __init__(
        self,
        settings: LeaderElectionSettings,
        api: LeaseApi,
        *,
        identity: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
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
        # Set once leadership was declared lost: a renewal still running in its thread after the
        # deadline must not make this elector look like a leader again.
        self._abandoned = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    # --- one attempt (blocking) ----------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One attempt to take or keep the Lease; True when we hold it afterwards."""
        return self._attempt() is _Outcome.HELD

    def _attempt(self) -> _Outcome:
        name, namespace = self._settings.lease_name, self._settings.lease_namespace
        timeout = self._retry_s
        try:
            lease = self._api.read_namespaced_lease(name, namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == _NOT_FOUND:
                return self._create(name, namespace, timeout)
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
            self._api.replace_namespaced_lease(name, namespace, body, _request_timeout=timeout)
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
        return self._held(wanted)

    def _create(self, name: str, namespace: str, timeout: float) -> _Outcome:
        now = _micro_time(self._now())
        wanted = LeaseRecord(self.identity, self._duration_seconds(), now, now, 0)
        body = V1Lease(metadata=V1ObjectMeta(name=name, namespace=namespace), spec=_spec(wanted, None))
        try:
            self._api.create_namespaced_lease(namespace, body, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == _CONFLICT:  # AlreadyExists: another candidate created it first
                return _Outcome.CONFLICT
            log.warning("lease create failed", lease=name, namespace=namespace, status=exc.status, reason=exc.reason)
            return _Outcome.ERROR
        except _TRANSIENT as exc:
            log.warning("lease create failed", lease=name, namespace=namespace, error=str(exc))
            return _Outcome.ERROR
        log.info("created lease", lease=name, namespace=namespace, identity=self.identity)
        return self._held(wanted)

    def _held(self, record: LeaseRecord) -> _Outcome:
        self._observed, self._observed_at = record, self._clock()
        self._leading = not self._abandoned
        return _Outcome.HELD

    def _observe(self, record: LeaseRecord) -> None:
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()

    def _expired(self, record: LeaseRecord) -> bool:
        duration = record.duration_seconds or self._lease_s
        return self._clock() >= self._observed_at + duration

    def _duration_seconds(self) -> int:
        return max(1, math.ceil(self._lease_s))

    def release(self) -> bool:
        """Give the Lease up so a successor need not wait out the lease duration.

        Only a holder releases; True when the Lease was released (or was not ours to keep).
        """
        if not self._leading:
            return True
        self._leading = False
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

    # --- the loop (asyncio) --------------------------------------------------------------------

    async def run(self, leading: asyncio.Event, stop: asyncio.Event) -> None:
        """Wait for the Lease, hold it with ``leading`` set, release it once ``stop`` is set.

        Returns after ``stop`` (having released the Lease if held). Raises
        :class:`LeadershipLost` when renewal failed past the renew deadline or another replica
        took the Lease; ``leading`` is cleared before either. Set ``stop`` only after the work
        that leadership guards has stopped: the Lease is free for others once this returns.
        Cancelling the task instead leaves the Lease to expire, because cancellation says
        nothing about whether the guarded work is still running.
        """
        leading.clear()
        try:
            if not await self._acquire(stop):
                return
            leading.set()
            await self._renew_until(stop)
        finally:
            leading.clear()
        await asyncio.to_thread(self.release)

    async def _acquire(self, stop: asyncio.Event) -> bool:
        log.info("waiting for lease", lease=self._settings.lease_name, identity=self.identity)
        while not stop.is_set():
            if await asyncio.to_thread(self.try_acquire_or_renew):
                return True
            # Jitter keeps candidates that started together from colliding on every attempt.
            if await _sleep_or_stop(self._retry_s * (1 + 0.2 * random.random()), stop):
                break
        return False

    async def _renew_until(self, stop: asyncio.Event) -> None:
        last_renew = self._clock()
        while not await _sleep_or_stop(self._retry_s, stop):
            deadline = last_renew + self._renew_s
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise self._lost(f"could not renew the lease for {self._renew_s:g}s")
                try:
                    outcome = await asyncio.wait_for(asyncio.to_thread(self._attempt), remaining)
                except TimeoutError as exc:
                    # The thread may still finish the write; we must not lead past the deadline.
                    raise self._lost(f"renewing the lease took longer than {self._renew_s:g}s") from exc
                if outcome is _Outcome.HELD:
                    last_renew = self._clock()
                    break
                if outcome is _Outcome.HELD_BY_OTHER:
                    holder = self._observed.holder if self._observed else None
                    raise self._lost(f"the lease is now held by {holder}")
                if await _sleep_or_stop(min(self._retry_s, max(0.0, deadline - self._clock())), stop):
                    return

    def _lost(self, why: str) -> LeadershipLost:
        self._leading = False
        self._abandoned = True
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


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep, waking early when ``stop`` is set; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def hold_leadership(
    settings: LeaderElectionSettings,
    api: LeaseApi,
    leading: asyncio.Event,
    stop: asyncio.Event,
    *,
    identity: str | None = None,
) -> None:
    """Hold the Lease while running, with ``leading`` set; see :meth:`LeaderElector.run`.

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
    await LeaderElector(settings, api, identity=identity).run(leading, stop)
