from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from canary.config import LeaderElectionSettings
from canary.kube.fence import NotLeading
from canary.kube.leader import (
    LeaderElectionError,
    LeaderElector,
    LeadershipLost,
    LeaseRecord,
    default_identity,
    hold_leadership,
)
from tests.kube.fake_leases import EPOCH, FakeLeaseApi, Time

NAMESPACE, NAME = "canary-system", "canary-controller"
SETTINGS = LeaderElectionSettings(lease_name=NAME, lease_namespace=NAMESPACE)
#: Waits for the blockers to start without needing a worker of the pool they occupy.
_PROBE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe")


def _elector(api: FakeLeaseApi, time: Time, identity: str = "me",
             settings: LeaderElectionSettings = SETTINGS) -> LeaderElector:
    return LeaderElector(settings, api, identity=identity, clock=time.monotonic, now=time.wall)


# --- one attempt at a time, on a hand-moved clock ------------------------------------------------


def test_creates_a_missing_lease() -> None:
    api, time = FakeLeaseApi(), Time()
    elector = _elector(api, time)
    assert elector.try_acquire_or_renew() is True
    assert elector.is_leader
    assert api.calls == ["read", "create"]
    assert api.record() == LeaseRecord(holder="me", duration_seconds=15, acquire_time=EPOCH, renew_time=EPOCH,
                                       transitions=0)


def test_takes_a_released_lease_at_once() -> None:
    api, time = FakeLeaseApi(), Time()
    api.put(None, EPOCH, transitions=4)
    assert _elector(api, time).try_acquire_or_renew() is True
    record = api.record()
    assert (record.holder, record.transitions, record.acquire_time) == ("me", 5, EPOCH)


def test_respects_a_live_lease_held_by_another() -> None:
    api, time = FakeLeaseApi(), Time()
    api.put("other", EPOCH)
    elector = _elector(api, time)
    assert elector.try_acquire_or_renew() is False
    time.advance(10)
    api.put("other", time.wall())  # the holder renews
    time.advance(10)
    assert elector.try_acquire_or_renew() is False
    assert not elector.is_leader
    assert api.record().holder == "other"
    assert "replace" not in api.calls


def test_takes_over_an_expired_lease() -> None:
    api, time = FakeLeaseApi(), Time()
    api.put("crashed", EPOCH, transitions=3)
    elector = _elector(api, time)
    assert elector.try_acquire_or_renew() is False  # first sight starts our own count
    time.advance(14.9)
    assert elector.try_acquire_or_renew() is False
    time.advance(0.1)
    assert elector.try_acquire_or_renew() is True
    record = api.record()
    assert record.holder == "me"
    assert record.transitions == 4
    assert record.acquire_time == record.renew_time == time.wall()


def test_expiry_is_measured_on_our_clock_not_the_holders_timestamps() -> None:
    api, time = FakeLeaseApi(), Time()
    # Written by a node whose clock is an hour behind: a live lease all the same.
    api.put("other", EPOCH - timedelta(hours=1))
    assert _elector(api, time).try_acquire_or_renew() is False


def test_renewal_moves_renew_time_only() -> None:
    api, time = FakeLeaseApi(), Time()
    elector = _elector(api, time)
    elector.try_acquire_or_renew()
    version = api.resource_version()
    time.advance(2)
    assert elector.try_acquire_or_renew() is True
    record = api.record()
    assert record.acquire_time == EPOCH
    assert record.renew_time == EPOCH + timedelta(seconds=2)
    assert record.transitions == 0
    assert int(api.resource_version()) > int(version)


def test_a_restarted_holder_with_the_same_identity_keeps_its_lease() -> None:
    api, time = FakeLeaseApi(), Time()
    api.put("me", EPOCH, transitions=2)
    assert _elector(api, time).try_acquire_or_renew() is True
    assert api.record().transitions == 2


def test_two_candidates_one_winner() -> None:
    api, time = FakeLeaseApi(), Time()
    first, second = _elector(api, time, "a"), _elector(api, time, "b")
    assert first.try_acquire_or_renew() is True
    assert second.try_acquire_or_renew() is False
    assert (first.is_leader, second.is_leader) == (True, False)


def test_a_lost_race_is_a_conflict_not_a_win() -> None:
    api, time = FakeLeaseApi(), Time()
    api.put(None, EPOCH)
    api.before_replace = lambda: api.put("faster", time.wall())
    elector = _elector(api, time)
    assert elector.try_acquire_or_renew() is False
    assert not elector.is_leader
    api.before_replace = None
    assert elector.try_acquire_or_renew() is False  # and the winner's lease is live
    assert api.record().holder == "faster"


def test_a_lost_create_race() -> None:
    api, time = FakeLeaseApi(), Time()
    real_create = api.create_namespaced_lease

    def racing_create(namespace: str, body: Any, **kwargs: Any) -> Any:
        api.put("faster", time.wall())
        return real_create(namespace, body, **kwargs)

    api.create_namespaced_lease = racing_create  # type: ignore[method-assign]
    assert _elector(api, time).try_acquire_or_renew() is False


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(ApiException(status=500, reason="Internal Server Error"), id="server-error"),
        pytest.param(ApiException(status=403, reason="Forbidden"), id="forbidden"),
        pytest.param(ConnectionRefusedError("refused"), id="unreachable"),
    ],
)
def test_api_failures_are_failed_attempts(failure: Exception) -> None:
    api, time = FakeLeaseApi(), Time()
    api.failure = failure
    assert _elector(api, time).try_acquire_or_renew() is False


def test_release_frees_the_lease_for_a_successor() -> None:
    api, time = FakeLeaseApi(), Time()
    leader = _elector(api, time, "old")
    leader.try_acquire_or_renew()
    assert leader.release() is True
    assert not leader.is_leader
    record = api.record()
    assert (record.holder, record.duration_seconds, record.transitions) == (None, 1, 0)
    assert _elector(api, time, "new").try_acquire_or_renew() is True
    assert api.record().transitions == 1


def test_release_leaves_someone_elses_lease_alone() -> None:
    api, time = FakeLeaseApi(), Time()
    elector = _elector(api, time)
    elector.try_acquire_or_renew()
    api.put("usurper", time.wall())
    assert elector.release() is True
    assert api.record().holder == "usurper"


def test_written_times_always_carry_microseconds() -> None:
    api, time = FakeLeaseApi(), Time()
    elector = LeaderElector(SETTINGS, api, identity="me", clock=time.monotonic,
                            now=lambda: datetime(2024, 5, 1, 10, 0, 0, tzinfo=timezone.utc))
    elector.try_acquire_or_renew()
    assert api.record().renew_time == datetime(2024, 5, 1, 10, 0, 0, 1, tzinfo=timezone.utc)


def test_fractional_lease_duration_rounds_up() -> None:
    api, time = FakeLeaseApi(), Time()
    settings = LeaderElectionSettings(lease_duration=timedelta(seconds=0.6), renew_deadline=timedelta(seconds=0.3),
                                      retry_period=timedelta(seconds=0.05))
    _elector(api, time, settings=settings).try_acquire_or_renew()
    assert LeaseRecord.from_lease(next(iter(api.leases.values()))).duration_seconds == 1


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [pytest.param(10, 10, 2, id="renew-not-below-lease"), pytest.param(15, 2, 2, id="retry-not-below-renew"),
     pytest.param(15, 10, 0, id="no-retry-period")],
)
def test_settings_that_cannot_work(lease: float, renew: float, retry: float) -> None:
    settings = LeaderElectionSettings(lease_duration=timedelta(seconds=lease), renew_deadline=timedelta(seconds=renew),
                                      retry_period=timedelta(seconds=retry))
    with pytest.raises(LeaderElectionError, match="need lease_duration"):
        LeaderElector(settings, FakeLeaseApi())


def test_identity_defaults() -> None:
    assert LeaderElector(SETTINGS, FakeLeaseApi()).identity == default_identity()
    assert LeaderElector(LeaderElectionSettings(identity="pod-a"), FakeLeaseApi()).identity == "pod-a"
    assert default_identity().rsplit("_", 1)[1].isdigit()


# --- the guard writers check, on a hand-moved clock -----------------------------------------------


def test_the_guard_is_open_from_acquisition_until_the_renew_deadline() -> None:
    api, time = FakeLeaseApi(), Time()
    elector = _elector(api, time)
    with pytest.raises(NotLeading):
        elector.guard.check("a write before the Lease is ours")
    assert elector.try_acquire_or_renew()
    assert elector.guard.remaining() == pytest.approx(SETTINGS.renew_deadline.total_seconds())
    time.advance(8)
    assert elector.try_acquire_or_renew()  # renewed: the deadline moves with it
    time.advance(9.9)
    elector.guard.check("a write 9.9 s after the last renewal")
    # Frozen (SIGSTOP, a node freeze) past the renew deadline: the guard closes on its own clock,
    # before any other replica may take the Lease (at the lease duration).
    time.advance(0.2)
    with pytest.raises(NotLeading, match="not proven held"):
        elector.guard.check("a write after the freeze")


def test_a_renewal_is_counted_from_when_it_was_sent() -> None:
    api, time = FakeLeaseApi(), Time()
    elector = _elector(api, time)
    # The request takes 3 s: the API server accepted it at some point in between, so the proof
    # runs from the moment it was sent, not from the answer.
    api.before_replace = lambda: time.advance(3)
    api.put(None, time.wall(), transitions=0)
    assert elector.try_acquire_or_renew()
    assert elector.guard.remaining() == pytest.approx(SETTINGS.renew_deadline.total_seconds() - 3)


def test_release_and_loss_close_the_guard_for_good() -> None:
    api, time = FakeLeaseApi(), Time()
    elector = _elector(api, time)
    elector.try_acquire_or_renew()
    elector.release()
    with pytest.raises(NotLeading, match="leadership was lost"):
        elector.guard.check("a write after handing the Lease over")
    assert elector.try_acquire_or_renew()  # the API call may succeed, but this process never leads again
    with pytest.raises(NotLeading):
        elector.guard.check("a write")


# --- the loop, in real time ------------------------------------------------------------------------
# Deadlines are a few seconds so a busy machine does not lose the Lease by accident; every wait is
# for a condition.

FAST = LeaderElectionSettings(lease_name=NAME, lease_namespace=NAMESPACE, lease_duration=timedelta(seconds=4),
                              renew_deadline=timedelta(seconds=2), retry_period=timedelta(seconds=0.02))


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_leads_while_running_and_releases_on_stop() -> None:
    api = FakeLeaseApi()
    leading, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(hold_leadership(FAST, api, leading, stop, identity="me"))
    await asyncio.wait_for(leading.wait(), 30)
    assert api.record().holder == "me"
    version = int(api.resource_version())
    await _until(lambda: int(api.resource_version()) > version + 2)  # renewing
    stop.set()
    await asyncio.wait_for(task, 30)
    assert not leading.is_set()
    assert api.record().holder is None


async def test_waits_for_a_live_lease_and_stops_on_request() -> None:
    api = FakeLeaseApi()
    api.put("other", datetime.now(timezone.utc), duration=60)
    leading, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(hold_leadership(FAST, api, leading, stop, identity="me"))
    await _until(lambda: api.calls.count("read") >= 3)
    assert not leading.is_set()
    stop.set()
    await asyncio.wait_for(task, 30)
    assert api.record().holder == "other"


async def test_takes_over_when_the_holder_stops_renewing() -> None:
    api = FakeLeaseApi()
    api.put("crashed", datetime.now(timezone.utc), duration=1)
    leading, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(hold_leadership(FAST, api, leading, stop, identity="me"))
    await asyncio.wait_for(leading.wait(), 30)
    assert api.record().holder == "me"
    stop.set()
    await task


async def test_renewal_failing_past_the_deadline_loses_leadership() -> None:
    api = FakeLeaseApi()
    leading, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(hold_leadership(FAST, api, leading, stop, identity="me"))
    await asyncio.wait_for(leading.wait(), 30)
    api.failure = ApiException(status=503, reason="Service Unavailable")
    with pytest.raises(LeadershipLost, match="could not renew the lease for 2s"):
        await asyncio.wait_for(task, 30)
    assert not leading.is_set()


async def test_a_brief_failure_within_the_deadline_is_survived() -> None:
    api = FakeLeaseApi()
    leading, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(hold_leadership(FAST, api, leading, stop, identity="me"))
    await asyncio.wait_for(leading.wait(), 30)
    api.failure = ConnectionResetError("reset")
    failed_from = len(api.calls)
    await _until(lambda: len(api.calls) >= failed_from + 2)
    api.failure = None
    version = int(api.resource_version())
    await _until(lambda: int(api.resource_version()) > version)
    assert leading.is_set() and not task.done()
    stop.set()
    await task


async def test_losing_the_lease_to_another_on_conflict() -> None:
    api = FakeLeaseApi()
    leading, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(hold_leadership(FAST, api, leading, stop, identity="me"))
    await asyncio.wait_for(leading.wait(), 30)
    # Another replica writes first; our next renewal answers 409 and the re-read shows the winner.
    api.before_replace = lambda: api.put("usurper", datetime.now(timezone.utc))
    with pytest.raises(LeadershipLost, match="now held by usurper"):
        await asyncio.wait_for(task, 30)
    assert not leading.is_set()
    assert "replace" in api.calls


async def test_a_hung_renewal_does_not_outlive_the_deadline() -> None:
    api = FakeLeaseApi()
    leading, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(hold_leadership(FAST, api, leading, stop, identity="me"))
    await asyncio.wait_for(leading.wait(), 30)
    api.hang = threading.Event()
    try:
        with pytest.raises(LeadershipLost):
            await asyncio.wait_for(task, 30)
        assert not leading.is_set()
    finally:
        api.hang.set()


async def test_renewals_do_not_queue_behind_the_shared_worker_pool() -> None:
    # At 1000 Canaries every worker of the default pool was busy with API calls and renewals
    # waited behind them until the Lease was lost. Occupy every worker; the election must go on.
    loop = asyncio.get_running_loop()
    release_workers = threading.Event()
    workers = min(32, (os.cpu_count() or 1) + 4)
    started = threading.Semaphore(0)

    def occupy() -> None:
        started.release()
        release_workers.wait(60)

    blockers = [loop.run_in_executor(None, occupy) for _ in range(workers * 2)]
    try:
        for _ in range(workers):
            await loop.run_in_executor(_PROBE_POOL, started.acquire)
        api = FakeLeaseApi()
        leading, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(hold_leadership(FAST, api, leading, stop, identity="me"))
        await asyncio.wait_for(leading.wait(), 30)
        version = int(api.resource_version())
        await _until(lambda: int(api.resource_version()) >= version + 3)
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        release_workers.set()
        await asyncio.gather(*blockers)


async def test_disabled_election_leads_at_once() -> None:
    api = FakeLeaseApi()
    leading, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(hold_leadership(LeaderElectionSettings(enabled=False), api, leading, stop))
    await asyncio.wait_for(leading.wait(), 30)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert not leading.is_set()
    assert api.calls == []
