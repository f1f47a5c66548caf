"""Sharding over Leases: a fleet of coordinators on one in-memory API server and one hand-moved
clock, then the asyncio side (giving a bucket up, in real threads) and the registry's part."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from canary.config import LeaderElectionSettings
from canary.kube.cache import Kind, ObjectKey
from canary.kube.fence import WRITE_GUARD, LeaseGuard, NotLeading
from canary.kube.leader import LeaderElector
from canary.kube.reconciler import CanaryReconciler, ReconcilerRegistry, Services
from canary.kube.shard_plan import bucket_lease_name, bucket_of, member_lease_name
from canary.kube.shards import ShardCoordinator, Shards
from tests.kube.fake_leases import FakeLeaseApi, Time

NAMESPACE, NAME = "canary-system", "canary-controller"
SETTINGS = LeaderElectionSettings(lease_name=NAME, lease_namespace=NAMESPACE)
BUCKETS = 12
RETRY_S = SETTINGS.retry_period.total_seconds()
LEASE_S = SETTINGS.lease_duration.total_seconds()


@dataclass
class Replica:
    coordinator: ShardCoordinator
    member: LeaderElector
    alive: bool = True
    gave_up: list[int] = field(default_factory=list)


@dataclass
class Fleet:
    """Replicas taking turns, one round (a retry period) at a time, as their threads would.

    After every single call that can change who holds what, :meth:`check` asserts that no bucket
    has two replicas whose guard would let a write through.
    """

    api: FakeLeaseApi = field(default_factory=lambda: FakeLeaseApi(NAMESPACE, NAME))
    time: Time = field(default_factory=Time)
    replicas: list[Replica] = field(default_factory=list)

    def add(self, identity: str) -> Replica:
        coordinator = ShardCoordinator(SETTINGS, BUCKETS, self.api, identity=identity, clock=self.time.monotonic,
                                       now=self.time.wall)
        replica = Replica(coordinator, coordinator.member_elector())
        assert replica.member.try_acquire_or_renew()
        self.replicas.append(replica)
        return replica

    def round(self) -> None:
        self.time.advance(RETRY_S)
        for replica in self.replicas:
            if not replica.alive:
                continue
            assert replica.member.try_acquire_or_renew(), "a live replica keeps its membership"
            for elector in replica.coordinator.held().values():
                assert elector.try_acquire_or_renew(), "nobody takes a bucket whose holder renews it"
                self.check()
            _, shed = replica.coordinator.step()
            self.check()
            for bucket in shed:
                self._give_up(replica, bucket)
                self.check()

    def _give_up(self, replica: Replica, bucket: int) -> None:
        # Shards._give_up's order, with nothing in flight: revoke, (stop reconcilers), release.
        elector = replica.coordinator.held()[bucket]
        elector.guard.revoke()
        assert elector.guard.wait_drained(0)
        assert elector.release()
        replica.coordinator.forget(bucket)
        replica.gave_up.append(bucket)

    def writers(self, bucket: int) -> list[str]:
        """Replicas whose guard for ``bucket`` would let a write through right now."""
        return [r.coordinator.identity for r in self.replicas
                if (e := r.coordinator.held().get(bucket)) is not None and e.guard.remaining() > 0]

    def check(self) -> None:
        for bucket in range(BUCKETS):
            writers = self.writers(bucket)
            assert len(writers) <= 1, f"bucket {bucket} writable by {writers} at t={self.time.seconds}"

    def holdings(self) -> dict[str, list[int]]:
        return {r.coordinator.identity: r.coordinator.acting() for r in self.replicas if r.alive}

    def settled(self) -> bool:
        """Every bucket held by one live replica, each at most at its fair share."""
        live = [r for r in self.replicas if r.alive]
        held = [b for r in live for b in r.coordinator.acting()]
        share = -(-BUCKETS // len(live))
        return sorted(held) == list(range(BUCKETS)) and all(len(r.coordinator.acting()) <= share for r in live)

    def rounds_until(self, done: Callable[[], bool], limit: int = 60) -> int:
        for count in range(1, limit + 1):
            self.round()
            if done():
                return count
        raise AssertionError(f"not done after {limit} rounds: {self.holdings()}")


def test_replicas_started_together_share_the_buckets_evenly() -> None:
    fleet = Fleet()
    for name in ("a", "b", "c"):
        fleet.add(name)
    fleet.rounds_until(fleet.settled)
    assert sorted(len(held) for held in fleet.holdings().values()) == [4, 4, 4]
    for identity, held in fleet.holdings().items():
        for bucket in held:
            assert fleet.api.holder(bucket_lease_name(NAME, bucket)) == identity


def test_the_first_round_only_looks_so_replicas_started_together_do_not_grab_everything() -> None:
    fleet = Fleet()
    first = fleet.add("a")
    fleet.add("b")
    fleet.round()
    assert first.coordinator.acting() == []
    fleet.round()
    assert 0 < len(first.coordinator.acting()) <= BUCKETS // 2


def test_a_dead_replicas_buckets_move_to_the_survivors_after_its_leases_expire() -> None:
    fleet = Fleet()
    replicas = [fleet.add(name) for name in ("a", "b", "c")]
    fleet.rounds_until(fleet.settled)
    dead = replicas[0]
    orphaned = dead.coordinator.acting()
    dead.alive = False  # SIGKILL: no renewal, no release
    killed_at = fleet.time.seconds
    fleet.rounds_until(fleet.settled)
    took = fleet.time.seconds - killed_at
    assert sorted(len(held) for held in fleet.holdings().values()) == [6, 6]
    for bucket in orphaned:
        assert fleet.api.holder(bucket_lease_name(NAME, bucket)) in ("b", "c")
        # The dead replica's guard had run out before a survivor could write: the check after
        # every step (Fleet.check) proved it; here, that it ran out for good.
        assert dead.coordinator.held()[bucket].guard.remaining() <= 0
    # Others may count a lease as expired only a whole lease duration after its last renewal,
    # and they look every retry period: a few rounds after that, not more.
    assert LEASE_S <= took <= LEASE_S + 4 * RETRY_S, took


def test_a_replica_that_joins_gets_its_share_from_the_others() -> None:
    fleet = Fleet()
    first, second = fleet.add("a"), fleet.add("b")
    fleet.rounds_until(fleet.settled)
    assert sorted(len(held) for held in fleet.holdings().values()) == [6, 6]
    fleet.add("c")
    fleet.rounds_until(lambda: fleet.settled() and len(fleet.holdings()["c"]) == 4)
    assert len(first.gave_up) == 2 and len(second.gave_up) == 2, (first.gave_up, second.gave_up)
    assert sorted(len(held) for held in fleet.holdings().values()) == [4, 4, 4]


def test_a_bucket_lost_but_still_naming_this_replica_is_taken_back_at_once() -> None:
    fleet = Fleet()
    only = fleet.add("a")
    fleet.rounds_until(fleet.settled)
    elector = only.coordinator.held()[3]
    elector.guard.revoke()  # as LeaderElector._lost does when a renewal misses its deadline
    only.coordinator.forget(3)  # once its reconcilers stopped
    fleet.round()
    again = only.coordinator.held()[3]
    assert again is not elector and again.guard.remaining() > 0, "a fresh guard: a revoked one never opens again"


def test_members_long_gone_are_deleted_and_no_longer_counted() -> None:
    fleet = Fleet()
    live, gone = fleet.add("a"), fleet.add("b")
    gone.alive = False
    gone_lease = member_lease_name(NAME, "b")
    fleet.rounds_until(lambda: (NAMESPACE, gone_lease) not in fleet.api.leases, limit=60)
    assert fleet.time.seconds - 100 >= 4 * LEASE_S
    assert live.coordinator.survey().members == {"a"}


def test_a_survey_counts_only_live_members() -> None:
    fleet = Fleet()
    a, b = fleet.add("a"), fleet.add("b")
    assert a.coordinator.survey().members == {"a", "b"}
    b.alive = False
    for _ in range(int(LEASE_S / RETRY_S) + 1):
        fleet.round()
    assert a.coordinator.survey().members == {"a"}


# --- giving a bucket up, in real threads -----------------------------------------------------------
# Durations are seconds so a busy machine keeps its Leases; every wait is for a condition.

FAST = LeaderElectionSettings(lease_name=NAME, lease_namespace=NAMESPACE, lease_duration=timedelta(seconds=4),
                              renew_deadline=timedelta(seconds=3), retry_period=timedelta(seconds=0.05))


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


class RecordingOwner:
    """A BucketOwner that writes down what it was told and what the Lease said at that moment."""

    def __init__(self, api: FakeLeaseApi) -> None:
        self.api = api
        self.guards: dict[int, LeaseGuard] = {}
        self.released: list[tuple[int, bool, str | None]] = []
        #: While set, release_bucket waits for it (reconcilers slow to stop).
        self.hold_release: asyncio.Event | None = None

    def claim(self, bucket: int, guard: LeaseGuard) -> None:
        self.guards[bucket] = guard

    async def release_bucket(self, bucket: int) -> None:
        guard = self.guards.pop(bucket)
        self.released.append((bucket, guard.revoked, self.api.holder(bucket_lease_name(NAME, bucket))))
        if self.hold_release is not None:
            await self.hold_release.wait()


async def test_giving_a_bucket_up_revokes_stops_drains_then_releases() -> None:
    api = FakeLeaseApi(NAMESPACE, NAME)
    owner = RecordingOwner(api)
    shards = Shards(ShardCoordinator(FAST, 2, api, identity="me"), owner)
    stop = asyncio.Event()
    running = asyncio.create_task(shards.run(stop))
    await _until(lambda: len(owner.guards) == 2)
    guard = owner.guards[1]
    lease = bucket_lease_name(NAME, 1)

    # A write for the bucket is on its way (checked by the guard, not answered yet).
    answered, sent = threading.Event(), threading.Event()

    def write() -> None:
        with guard.sending("patch_namespaced_custom_object"):
            sent.set()
            answered.wait(30)

    writer = threading.Thread(target=write)
    writer.start()
    assert sent.wait(30)

    giving_up = asyncio.create_task(shards._give_up(1))
    await _until(lambda: bool(owner.released))
    assert owner.released == [(1, True, "me")], "the guard is revoked before the reconcilers stop, the Lease kept"
    with pytest.raises(NotLeading):
        guard.check("a write after the bucket was given up")
    # Released only once the write in flight is answered: it cannot land after a new holder's.
    await _until(lambda: guard.in_flight == 1)
    assert api.holder(lease) == "me" and not giving_up.done()
    answered.set()
    writer.join()
    await giving_up
    await _until(lambda: api.holder(lease) is None)
    assert shards.held_count() == 1
    stop.set()
    await asyncio.wait_for(running, 30)
    assert api.holder(bucket_lease_name(NAME, 0)) is None, "stopping gives every bucket up"
    assert api.holder(member_lease_name(NAME, "me")) is None


async def test_a_bucket_whose_renewal_fails_stops_only_that_bucket() -> None:
    api = FakeLeaseApi(NAMESPACE, NAME)
    owner = RecordingOwner(api)
    shards = Shards(ShardCoordinator(FAST, 2, api, identity="me"), owner)
    stop = asyncio.Event()
    running = asyncio.create_task(shards.run(stop))
    await _until(lambda: len(owner.guards) == 2)
    # Another replica writes bucket 0's Lease (an operator's mistake, a split brain): the
    # renewal sees another holder and gives the bucket up at once, nothing else.
    api.namespace, api.name = NAMESPACE, bucket_lease_name(NAME, 0)
    lost_guard = owner.guards[0]
    api.put("intruder", api.record().renew_time or Time().wall(), transitions=9)
    await _until(lambda: any(bucket == 0 for bucket, _, _ in owner.released))
    assert lost_guard.revoked
    assert not running.done(), "losing a bucket does not end the replica"
    assert 1 in owner.guards and owner.guards[1].remaining() > 0
    stop.set()
    await asyncio.wait_for(running, 30)


# --- the registry: only owned Canaries get a reconciler, each with its bucket's guard ---------------


@dataclass
class _StubCache:
    bodies: dict[ObjectKey, Any] = field(default_factory=dict)

    def put(self, key: ObjectKey, body: Any) -> None:
        self.bodies[key] = body

    def remove(self, key: ObjectKey) -> None:
        self.bodies.pop(key, None)

    def forget_canary(self, key: ObjectKey) -> None:
        pass

    def dependents(self, key: ObjectKey) -> frozenset[ObjectKey]:
        return frozenset()


@dataclass
class _StubMetrics:
    forgotten: list[str] = field(default_factory=list)

    def forget(self, namespace: str, name: str) -> None:
        self.forgotten.append(name)


async def test_the_registry_runs_only_the_canaries_of_buckets_it_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[ObjectKey, LeaseGuard | None] = {}

    async def loop(self: CanaryReconciler) -> None:
        seen[self.key] = WRITE_GUARD.get()
        await asyncio.Event().wait()

    monkeypatch.setattr(CanaryReconciler, "_loop", loop)
    metrics = _StubMetrics()
    services: Any = Services(settings=None, cache=_StubCache(), executor=None, probes=None,  # type: ignore[arg-type]
                             routers=None, metrics=metrics)  # type: ignore[arg-type]
    registry = ReconcilerRegistry(services, buckets=4)
    keys = [ObjectKey(Kind.CANARY, "shop", f"app-{i}") for i in range(20)]
    by_bucket = {b: [k for k in keys if bucket_of(k.namespace, k.name, 4) == b] for b in range(4)}
    assert all(by_bucket.values()), "the names cover every bucket"
    guard = LeaseGuard()
    registry.claim(2, guard)
    for key in keys:
        registry.canary_changed(key, {"metadata": {"name": key.name}})
    await _until(lambda: len(seen) == len(by_bucket[2]))
    assert set(seen) == set(by_bucket[2]) and all(g is guard for g in seen.values())
    assert all(registry.get(k) is None for b in (0, 1, 3) for k in by_bucket[b])

    # A bucket claimed later starts its Canaries from what the watch already delivered.
    other = LeaseGuard()
    registry.claim(0, other)
    await _until(lambda: len(seen) == len(by_bucket[2]) + len(by_bucket[0]))
    assert all(seen[k] is other for k in by_bucket[0])

    await registry.release_bucket(2)
    assert all(registry.get(k) is None for k in by_bucket[2])
    assert sorted(metrics.forgotten) == sorted(k.name for k in by_bucket[2]), "the new holder exports their series"
    assert all(registry.get(k) is not None for k in by_bucket[0])
    assert registry.held_buckets() == {0}
    await registry.stop_all()
