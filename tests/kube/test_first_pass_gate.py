"""First passes are admitted a few at a time, later passes never wait for them, each drain of them
is noticed, and the heap is settled only when it has grown."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime, timedelta

from canary.config import Settings
from canary.kube.cache import Kind, ObjectKey
from canary.kube.reconciler import CanaryReconciler, Services
from canary.kube.startup_burst import FIRST_PASS_CONCURRENCY, HeapSettler, StartupBurst
from canary.telemetry import ControllerMetrics

FLEET = FIRST_PASS_CONCURRENCY * 3


class Flight:
    """What the fleet's passes share: how many are in flight, the most ever, and a door."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.first_passes_done = 0
        self.release = asyncio.Event()
        self.changed = asyncio.Event()


class Held(CanaryReconciler):
    """A first pass waits for ``flight.release``; any later pass returns at once."""

    def __init__(self, key: ObjectKey, services: Services, gate: StartupBurst, flight: Flight) -> None:
        super().__init__(key, services, gate)
        self.flight = flight
        self.later_passes = 0

    async def run_pass(self, now: datetime | None = None) -> timedelta | None:
        flight = self.flight
        first = self._passes == 0
        self._passes += 1  # as reconcile_once counts a pass of a cached Canary
        if not first:
            self.later_passes += 1
            flight.changed.set()
            return None
        flight.in_flight += 1
        flight.most = max(flight.most, flight.in_flight)
        flight.changed.set()
        try:
            await flight.release.wait()
        finally:
            flight.in_flight -= 1
        flight.first_passes_done += 1
        flight.changed.set()
        return None


def services() -> Services:
    # The loop itself uses only the settings and the metrics.
    return Services(settings=Settings(debounce=timedelta(0)), cache=None, executor=None,  # type: ignore[arg-type]
                    probes=None, routers=None, metrics=ControllerMetrics())  # type: ignore[arg-type]


async def _until(flight: Flight, condition: object) -> None:
    assert callable(condition)
    while not condition():
        flight.changed.clear()
        await flight.changed.wait()


async def test_at_most_the_limit_of_first_passes_run_at_once_and_all_of_them_run() -> None:
    overs: list[int] = []
    flight, shared = Flight(), services()
    gate = StartupBurst(on_drained=lambda: overs.append(flight.first_passes_done))
    fleet = [Held(ObjectKey(Kind.CANARY, "default", f"c{i}"), shared, gate, flight) for i in range(FLEET)]
    for reconciler in fleet:
        reconciler.start()
    try:
        await asyncio.wait_for(_until(flight, lambda: flight.in_flight == FIRST_PASS_CONCURRENCY), timeout=60)
        # Let every other task run as far as it can: none gets past the gate.
        for _ in range(100):
            await asyncio.sleep(0)
        assert flight.in_flight == FIRST_PASS_CONCURRENCY
        assert overs == []
        flight.release.set()
        await asyncio.wait_for(_until(flight, lambda: flight.first_passes_done == FLEET), timeout=60)
    finally:
        for reconciler in fleet:
            await reconciler.stop()
    assert flight.most == FIRST_PASS_CONCURRENCY
    assert overs == [FLEET], "drained once, when the last first pass has finished"


async def test_a_later_pass_does_not_wait_behind_first_passes() -> None:
    gate, flight, shared = StartupBurst(), Flight(), services()
    veteran = Held(ObjectKey(Kind.CANARY, "default", "veteran"), shared, gate, flight)
    veteran._passes = 1  # its first pass is long done
    newcomers = [Held(ObjectKey(Kind.CANARY, "default", f"c{i}"), shared, gate, flight) for i in range(FLEET)]
    for reconciler in newcomers:
        reconciler.start()
    try:
        await asyncio.wait_for(_until(flight, lambda: flight.in_flight == FIRST_PASS_CONCURRENCY), timeout=60)
        veteran.start()  # the gate is full, and the veteran's pass still runs
        await asyncio.wait_for(_until(flight, lambda: veteran.later_passes == 1), timeout=60)
        assert flight.first_passes_done == 0
    finally:
        flight.release.set()
        for reconciler in [veteran, *newcomers]:
            await reconciler.stop()


async def test_a_drain_is_noticed_only_when_no_first_pass_runs_or_waits() -> None:
    drains: list[str] = []
    burst = StartupBurst(limit=1, on_drained=lambda: drains.append("drained"))
    inside, waiter_in = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with burst.admit():
            inside.set()
            await waiter_in.wait()

    async def second() -> None:
        async with burst.admit():
            pass

    holder = asyncio.create_task(first())
    await inside.wait()
    waiter = asyncio.create_task(second())
    for _ in range(20):
        await asyncio.sleep(0)  # the second waits at the gate
    waiter_in.set()
    await asyncio.gather(holder, waiter)
    assert drains == ["drained"]
    async with burst.admit():  # a Canary created later
        pass
    assert drains == ["drained", "drained"]


def test_the_heap_is_settled_only_when_it_has_grown_by_the_factor_since_last_time() -> None:
    heap, settled = [1000], []
    settle = HeapSettler(growth=1.25, blocks=lambda: heap[0], settle=lambda: settled.append(heap[0]))
    heap[0] = 1249
    settle()
    assert settled == []
    heap[0] = 1250
    settle()
    assert settled == [1250]
    heap[0] = 1500  # grown, but by less than a quarter since it was settled
    settle()
    assert settled == [1250]
    heap[0] = 1563
    settle()
    assert settled == [1250, 1563]


def test_settling_the_heap_freezes_what_is_left() -> None:
    # In a process of its own: frozen objects stay frozen for the process's life.
    code = ("import gc\nfrom canary.kube.startup_burst import settle_heap\n"
            "assert gc.get_freeze_count() == 0\nsettle_heap()\nassert gc.get_freeze_count() > 0\n")
    subprocess.run([sys.executable, "-c", code], check=True)
