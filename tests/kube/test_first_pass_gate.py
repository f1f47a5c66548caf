"""First passes are admitted a few at a time; later passes never wait for them."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from canary.config import Settings
from canary.kube.cache import Kind, ObjectKey
from canary.kube.reconciler import FIRST_PASS_CONCURRENCY, CanaryReconciler, Services
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

    def __init__(self, key: ObjectKey, services: Services, gate: asyncio.Semaphore, flight: Flight) -> None:
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
    gate, flight, shared = asyncio.Semaphore(FIRST_PASS_CONCURRENCY), Flight(), services()
    fleet = [Held(ObjectKey(Kind.CANARY, "default", f"c{i}"), shared, gate, flight) for i in range(FLEET)]
    for reconciler in fleet:
        reconciler.start()
    try:
        await asyncio.wait_for(_until(flight, lambda: flight.in_flight == FIRST_PASS_CONCURRENCY), timeout=60)
        # Let every other task run as far as it can: none gets past the gate.
        for _ in range(100):
            await asyncio.sleep(0)
        assert flight.in_flight == FIRST_PASS_CONCURRENCY
        flight.release.set()
        await asyncio.wait_for(_until(flight, lambda: flight.first_passes_done == FLEET), timeout=60)
    finally:
        for reconciler in fleet:
            await reconciler.stop()
    assert flight.most == FIRST_PASS_CONCURRENCY


async def test_a_later_pass_does_not_wait_behind_first_passes() -> None:
    gate, flight, shared = asyncio.Semaphore(FIRST_PASS_CONCURRENCY), Flight(), services()
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
