"""Dynamic sharding over Leases: a fleet of replicas shares the Canaries, each Canary acted on by
exactly one replica at a time (see ``canary.kube.shard_plan`` for who takes which bucket).

Every Lease here follows the leader Lease's rules (``canary.kube.leader``: client-go's rules,
our own monotonic clock for expiry, conditional writes); only the names differ:

* ``<lease-name>-bucket-<k>`` for each bucket ``k``: whoever holds it acts on the Canaries
  whose ``namespace/name`` hashes to ``k``. Each held bucket has its own :class:`LeaseGuard`,
  which every write for one of its Canaries checks at the moment it is sent (the reconciler
  task runs with ``WRITE_GUARD`` set to it).
* ``<lease-name>-member-<digest of identity>``, one per replica: the live ones are counted for
  the fair share. A replica that cannot renew it past the renew deadline has lost the API
  server and exits (:class:`~canary.kube.leader.LeadershipLost`), as a leader does; losing a
  bucket only stops that bucket's Canaries.

All of them carry the label ``canary.dev/shard-group=<lease-name>``, so one LIST per round (every
retry period) shows the coordinator every member and every bucket.

Threads: the coordinator's rounds run in one thread; each held bucket is renewed by a thread of
its own, so a renewal stuck on a slow connection delays no other bucket's; the membership Lease
is renewed by ``LeaderElector.run``'s thread. None of them ever waits behind the Canaries' API
calls (the operator gives Lease calls their own API client).

Giving a bucket up, in this order: revoke its guard (no write for it passes any more), stop its
reconcilers, wait until no write checked by the guard is still in flight, and only then release
the Lease. A bucket whose renewal failed (its guard revoked by the elector) has its reconcilers
stopped before the coordinator may take it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

import structlog
from kubernetes.client import V1DeleteOptions, V1Preconditions

from canary.config import LeaderElectionSettings
from canary.kube.fence import LeaseGuard, lease_clock
from canary.kube.leader import TRANSIENT_ERRORS, LeaderElector, LeadershipLost, LeaseApi, LeaseRecord
from canary.kube.shard_plan import bucket_lease_name, member_lease_name, plan

__all__ = [
    "BUCKET_LABEL",
    "GROUP_LABEL",
    "ROLE_LABEL",
    "BucketOwner",
    "ShardCoordinator",
    "ShardLeaseApi",
    "Shards",
    "Survey",
]

log = structlog.get_logger(__name__)

GROUP_LABEL = "canary.dev/shard-group"
ROLE_LABEL = "canary.dev/shard-role"
BUCKET_LABEL = "canary.dev/shard-bucket"
_BUCKET, _MEMBER = "bucket", "member"
#: A member Lease unchanged this many lease durations belongs to a replica long gone (killed, or
#: stopped: a release is its last write); any member deletes it so they do not pile up.
_STALE_MEMBER_DURATIONS = 4


class ShardLeaseApi(LeaseApi, Protocol):
    """The calls of ``CoordinationV1Api`` sharding needs on top of election's."""

    def list_namespaced_lease(self, namespace: str, **kwargs: Any) -> Any: ...

    def delete_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> Any: ...


class BucketOwner(Protocol):
    """What acts on a bucket's Canaries (``ReconcilerRegistry``)."""

    def claim(self, bucket: int, guard: LeaseGuard) -> None:
        """Start acting on the bucket's Canaries, every write checked by ``guard``."""

    async def release_bucket(self, bucket: int) -> None:
        """Stop acting on the bucket's Canaries; returns once their reconcilers have stopped."""


@dataclass(frozen=True)
class _Seen:
    record: LeaseRecord
    at: float
    """When this record was first seen, on the coordinator's clock."""
    resource_version: str | None


@dataclass(frozen=True)
class Survey:
    """One listing of the shard Leases, judged by the expiry rule."""

    members: frozenset[str]
    """Identities of the live members, this replica's included."""
    holders: dict[int, str]
    """The live holder of each bucket that has one."""
    stale_members: tuple[tuple[str, str | None], ...] = ()
    """(name, resourceVersion) of member Leases long expired."""


@dataclass
class _Held:
    elector: LeaderElector
    stop: threading.Event = field(default_factory=threading.Event)
    shedding: bool = False


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class ShardCoordinator:
    """The rounds of one replica: survey the Leases, take free buckets up to the fair share, say
    which to give up. Blocking (API calls); :class:`Shards` runs it in a thread. ``clock`` and
    ``now`` are parameters so tests move time by hand, as for :class:`LeaderElector`."""

    def __init__(
        self,
        settings: LeaderElectionSettings,
        buckets: int,
        api: ShardLeaseApi,
        *,
        identity: str,
        clock: Callable[[], float] = lease_clock,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self.buckets = buckets
        self.identity = identity
        self._api = api
        self._clock = clock
        self._now = now
        self._lease_s = settings.lease_duration.total_seconds()
        self._seen: dict[str, _Seen] = {}
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()
        self._rounds = 0

    # --- the Leases ------------------------------------------------------------------------------

    def labels(self, role: str, bucket: int | None = None) -> dict[str, str]:
        labels = {GROUP_LABEL: self.settings.lease_name, ROLE_LABEL: role}
        if bucket is not None:
            labels[BUCKET_LABEL] = str(bucket)
        return labels

    def member_elector(self) -> LeaderElector:
        """The elector of this replica's membership Lease (run by :class:`Shards`)."""
        settings = replace(self.settings, lease_name=member_lease_name(self.settings.lease_name, self.identity))
        return LeaderElector(settings, self._api, identity=self.identity, clock=self._clock, now=self._now,
                             labels=self.labels(_MEMBER))

    def _bucket_elector(self, bucket: int) -> LeaderElector:
        name = bucket_lease_name(self.settings.lease_name, bucket)
        elector = LeaderElector(replace(self.settings, lease_name=name), self._api, identity=self.identity,
                                clock=self._clock, now=self._now, guard=LeaseGuard(self._clock),
                                labels=self.labels(_BUCKET, bucket))
        seen = self._seen.get(name)
        if seen is not None:
            elector.observe(seen.record, seen.at)
        return elector

    # --- what we hold (shared with the holder threads and the event loop) ------------------------

    def held(self) -> dict[int, LeaderElector]:
        """Buckets held, those being given up included."""
        with self._lock:
            return {bucket: held.elector for bucket, held in self._held.items()}

    def acting(self) -> list[int]:
        """Buckets held and not being given up."""
        with self._lock:
            return sorted(bucket for bucket, held in self._held.items() if not held.shedding)

    def stop_event(self, bucket: int) -> threading.Event | None:
        with self._lock:
            held = self._held.get(bucket)
            return held.stop if held else None

    def forget(self, bucket: int) -> None:
        """The bucket is no longer ours and its reconcilers have stopped: it may be taken again."""
        with self._lock:
            self._held.pop(bucket, None)

    # --- one round -------------------------------------------------------------------------------

    def survey(self) -> Survey:
        listed = self._api.list_namespaced_lease(
            self.settings.lease_namespace, label_selector=f"{GROUP_LABEL}={self.settings.lease_name}",
            _request_timeout=self.settings.retry_period.total_seconds())
        now = self._clock()
        members, holders, stale = {self.identity}, {}, []
        names: set[str] = set()
        for lease in listed.items or []:
            meta = lease.metadata
            name, labels = str(meta.name), dict(meta.labels or {})
            names.add(name)
            record = LeaseRecord.from_lease(lease)
            seen = self._seen.get(name)
            if seen is None or seen.record != record:
                seen = self._seen[name] = _Seen(record, now, meta.resource_version)
            duration = float(record.duration_seconds or self._lease_s)
            live = record.holder is not None and now < seen.at + duration
            role = labels.get(ROLE_LABEL)
            if role == _MEMBER:
                if live:
                    members.add(str(record.holder))
                elif now >= seen.at + _STALE_MEMBER_DURATIONS * self._lease_s and record.holder != self.identity:
                    stale.append((name, seen.resource_version))
            elif role == _BUCKET and live:
                bucket = _bucket_number(labels.get(BUCKET_LABEL), self.buckets)
                if bucket is not None:
                    holders[bucket] = str(record.holder)
        for gone in set(self._seen) - names:
            del self._seen[gone]
        return Survey(frozenset(members), holders, tuple(stale))

    def step(self) -> tuple[list[tuple[int, LeaderElector]], list[int]]:
        """One round: returns the buckets just taken (with their electors) and those to give up.

        The first round only looks: a replica that starts next to others would otherwise take
        every bucket before it has counted them, only to give most back a round later.
        """
        survey = self.survey()
        self._collect(survey.stale_members)
        self._rounds += 1
        if self._rounds == 1:
            return [], []
        with self._lock:
            acting = [b for b, held in self._held.items() if not held.shedding]
            mine = set(self._held)
        # A bucket whose Lease still names us but which we do not hold (we lost it and stopped
        # its Canaries) may be taken back at once: nobody else has written it since.
        free = [b for b in range(self.buckets) if b not in mine and survey.holders.get(b, self.identity) == self.identity]
        decided = plan(identity=self.identity, buckets=self.buckets, members=len(survey.members), held=acting, free=free)
        gained: list[tuple[int, LeaderElector]] = []
        for bucket in decided.take:
            elector = self._bucket_elector(bucket)
            if elector.try_acquire_or_renew():
                with self._lock:
                    self._held[bucket] = _Held(elector)
                gained.append((bucket, elector))
        with self._lock:
            for bucket in decided.shed:
                if (held := self._held.get(bucket)) is not None:
                    held.shedding = True
        if gained or decided.shed:
            log.info("shards rebalanced", identity=self.identity, members=len(survey.members),
                     took=[b for b, _ in gained], giving_up=list(decided.shed), holding=self.acting())
        return gained, list(decided.shed)

    def _collect(self, stale: Collection[tuple[str, str | None]]) -> None:
        for name, version in stale:
            options = V1DeleteOptions(preconditions=V1Preconditions(resource_version=version))
            try:
                self._api.delete_namespaced_lease(name, self.settings.lease_namespace, body=options,
                                                  _request_timeout=self.settings.retry_period.total_seconds())
            except TRANSIENT_ERRORS as exc:  # another member deleted it first, or it came back to life
                log.debug("stale member lease not deleted", lease=name, error=str(exc))
                continue
            self._seen.pop(name, None)
            log.info("deleted the lease of a member long gone", lease=name)


def _bucket_number(label: str | None, buckets: int) -> int | None:
    # A Lease of a fleet that ran with another bucket count is no bucket of ours.
    try:
        bucket = int(label or "")
    except ValueError:
        return None
    return bucket if 0 <= bucket < buckets else None


class Shards:
    """Runs a :class:`ShardCoordinator` for an asyncio program and hands buckets to ``owner``."""

    def __init__(self, coordinator: ShardCoordinator, owner: BucketOwner) -> None:
        self.coordinator = coordinator
        self.owner = owner
        self._retry_s = coordinator.settings.retry_period.total_seconds()
        self._drain_s = coordinator.settings.renew_deadline.total_seconds()
        self._tasks: set[asyncio.Task[None]] = set()

    def held_count(self) -> int:
        """Buckets this replica acts on (for the ``canary_shard_buckets`` gauge)."""
        return len(self.coordinator.acting())

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the membership Lease, take and give up buckets, until ``stop``; then give every
        bucket up (in the safe order) and release the membership Lease.

        Raises :class:`LeadershipLost` when the membership Lease could not be renewed past the
        renew deadline: this replica cannot reach the API server and must exit. Every bucket's
        own deadline is no longer than the membership's, so their guards refuse writes by then.
        """
        loop = asyncio.get_running_loop()
        member, member_stop = self.coordinator.member_elector(), asyncio.Event()
        joined = asyncio.Event()
        membership = asyncio.create_task(member.run(joined, member_stop), name="shard-membership")
        coordinating = threading.Event()
        thread = threading.Thread(target=self._coordinate, args=(loop, coordinating), daemon=True,
                                  name=f"shards-{self.coordinator.settings.lease_name}")
        stopping = asyncio.ensure_future(stop.wait())
        try:
            became = asyncio.ensure_future(joined.wait())
            done, _ = await asyncio.wait({became, stopping, membership}, return_when=asyncio.FIRST_COMPLETED)
            became.cancel()
            if membership in done:
                membership.result()
            if stopping.done():
                return
            thread.start()
            await asyncio.wait({stopping, membership}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            coordinating.set()
            stopping.cancel()
            if thread.is_alive():
                await asyncio.to_thread(thread.join)
            await self._give_up_all()
            member_stop.set()
            await membership  # re-raises LeadershipLost

    # --- the coordinator thread --------------------------------------------------------------------

    def _coordinate(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        # Jitter keeps replicas started together from listing and racing in lockstep.
        while not stop.wait(self._retry_s * (1 + 0.2 * random.random())):
            try:
                gained, shed = self.coordinator.step()
            except TRANSIENT_ERRORS as exc:
                log.warning("shard round failed", error=str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - the next round may succeed; a dead thread never would
                log.error("shard round failed unexpectedly", error=str(exc), error_type=type(exc).__name__)
                continue
            for bucket, elector in gained:
                held_stop = self.coordinator.stop_event(bucket)
                assert held_stop is not None
                threading.Thread(target=self._hold, args=(loop, bucket, elector, held_stop), daemon=True,
                                 name=f"shard-bucket-{bucket}").start()
                loop.call_soon_threadsafe(self.owner.claim, bucket, elector.guard)
            for bucket in shed:
                loop.call_soon_threadsafe(self._spawn, self._give_up(bucket))

    def _hold(self, loop: asyncio.AbstractEventLoop, bucket: int, elector: LeaderElector,
              stop: threading.Event) -> None:
        """A held bucket's renewals, in a thread of their own."""
        try:
            elector.hold_blocking(stop)
        except LeadershipLost:
            # The guard is revoked already; the bucket may be taken again once its reconcilers stopped.
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is ending
                loop.call_soon_threadsafe(self._spawn, self._stopped(bucket))
            return
        except BaseException as exc:  # noqa: BLE001 - a thread's error goes to the log, not to stderr
            elector.guard.revoke()
            log.error("bucket renewal failed", bucket=bucket, error=str(exc))
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._spawn, self._stopped(bucket))
            return
        self.coordinator.forget(bucket)

    # --- the event loop's side ---------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stopped(self, bucket: int) -> None:
        await self.owner.release_bucket(bucket)
        self.coordinator.forget(bucket)

    async def _give_up(self, bucket: int) -> None:
        """Revoke, stop the reconcilers, wait out writes in flight, then release the Lease."""
        elector = self.coordinator.held().get(bucket)
        stop = self.coordinator.stop_event(bucket)
        if elector is None or stop is None:
            return
        elector.guard.revoke()
        await self.owner.release_bucket(bucket)
        drained = await asyncio.to_thread(elector.guard.wait_drained, self._drain_s)
        if not drained:
            # A write is still on its way: letting the Lease expire (a lease duration from its
            # last renewal) instead of releasing it keeps the next holder behind that write.
            elector.abandon()
            log.warning("a write of a bucket given up is still in flight; its lease is left to expire",
                        bucket=bucket)
        stop.set()  # the holder thread releases the Lease (unless abandoned) and forgets the bucket

    async def _give_up_all(self) -> None:
        await asyncio.gather(*(self._give_up(bucket) for bucket in self.coordinator.held()),
                             return_exceptions=True)
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        # The holder threads release their Leases; wait for them (each release is bounded by a
        # retry period) so a successor need not wait out the lease duration.
        deadline = asyncio.get_running_loop().time() + self._drain_s + 2 * self._retry_s
        while self.coordinator.held() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
