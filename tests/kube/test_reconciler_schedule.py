"""The reconciler's own schedule: planned passes run on time, only watch events are debounced."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import datetime, timedelta

from canary.config import Settings
from canary.kube.cache import Kind, ObjectKey
from canary.domain.schedule import place_in_round
from canary.kube.reconciler import CanaryReconciler, Services
from canary.telemetry import ControllerMetrics

KEY = ObjectKey(Kind.CANARY, "default", "podinfo")
#: Far longer than any test may take: a pass held back by the debounce never happens.
PARKED = timedelta(days=1)


class Scripted(CanaryReconciler):
    """Each pass asks for the next after ``delays[i]``; nothing is reconciled."""

    def __init__(self, delays: list[timedelta | None], services: Services) -> None:
        super().__init__(KEY, services)
        self.delays = delays
        self.passes = 0
        self.done = asyncio.Event()

    async def run_pass(self, now: datetime | None = None) -> timedelta | None:
        index = self.passes
        self.passes += 1
        if index == 0:
            # From now on any debounced pass would wait a day.
            self.services.settings = replace(self.services.settings, debounce=PARKED)
        if index == 1:
            self.wake()  # a watch event arrives while a planned pass is pending
        if self.passes == len(self.delays):
            self.done.set()
        return self.delays[index] if index < len(self.delays) else None


def loop_services() -> Services:
    # Only the settings and the metrics are used by the loop itself.
    return Services(settings=Settings(debounce=timedelta(0)), cache=None, executor=None,  # type: ignore[arg-type]
                    probes=None, routers=None, metrics=ControllerMetrics())  # type: ignore[arg-type]


def scripted(delays: list[timedelta | None]) -> tuple[Scripted, ControllerMetrics]:
    services = loop_services()
    return Scripted(delays, services), services.metrics


def lateness_samples(metrics: ControllerMetrics) -> float:
    value = metrics.registry.get_sample_value("canary_tick_lateness_seconds_count")
    return value or 0.0


async def test_planned_passes_are_not_debounced_and_a_watch_event_does_not_delay_them() -> None:
    reconciler, metrics = scripted([timedelta(milliseconds=1)] * 3 + [None])
    reconciler.start()
    try:
        # Passes 2-4 are planned ones; with the day-long debounce on them this would never end.
        await asyncio.wait_for(reconciler.done.wait(), timeout=60)
    finally:
        await reconciler.stop()
    assert reconciler.passes == 4
    assert lateness_samples(metrics) == 3, "each planned pass records how late it started"


async def test_a_watch_event_without_a_planned_pass_is_debounced() -> None:
    reconciler, metrics = scripted([None, None])
    reconciler.start()
    try:
        await asyncio.wait_for(_until(lambda: reconciler.passes >= 1), timeout=60)
        reconciler.wake()  # debounced by a day from here on
        for _ in range(50):
            await asyncio.sleep(0)
        assert reconciler.passes == 1
    finally:
        await reconciler.stop()
    assert lateness_samples(metrics) == 0, "an event-driven pass is not a planned one"


async def _until(condition: object) -> None:
    assert callable(condition)
    while not condition():
        await asyncio.sleep(0.001)


class InRounds(CanaryReconciler):
    """Every pass asks for the next at the round's shared instant, give or take the microseconds
    by which real passes' deadlines differ, and notes the order the passes ran in."""

    def __init__(self, key: ObjectKey, services: Services, rounds: list[list[str]], instants: list[float],
                 jitter: random.Random) -> None:
        super().__init__(key, services)
        self.rounds, self.instants, self.jitter = rounds, instants, jitter

    async def run_pass(self, now: datetime | None = None) -> timedelta | None:
        index = self._passes
        self._passes += 1
        if index > 0:
            self.rounds[index - 1].append(self.key.name)
        if index >= len(self.instants):
            return None
        left = self.instants[index] - asyncio.get_running_loop().time() + self.jitter.uniform(-1e-4, 1e-4)
        return timedelta(seconds=max(left, 0.0))


async def test_canaries_due_at_the_same_instant_run_in_the_same_order_every_round() -> None:
    # Names whose places lie at least a millisecond apart, so the order is the places' alone.
    names: list[str] = []
    for i in range(200):
        place = place_in_round(f"default/app-{i}")
        if all(abs(place - place_in_round(f"default/{n}")) >= timedelta(milliseconds=1) for n in names):
            names.append(f"app-{i}")
        if len(names) == 8:
            break
    services = loop_services()
    loop = asyncio.get_running_loop()
    instants = [loop.time() + 0.3 * (k + 1) for k in range(5)]
    rounds: list[list[str]] = [[] for _ in instants]
    jitter = random.Random(13)
    fleet = [InRounds(ObjectKey(Kind.CANARY, "default", name), services, rounds, instants, jitter)
             for name in jitter.sample(names, len(names))]
    for reconciler in fleet:
        reconciler.start()
    try:
        await asyncio.wait_for(_until(lambda: len(rounds[-1]) == len(names)), timeout=60)
    finally:
        for reconciler in fleet:
            await reconciler.stop()
    by_place = sorted(names, key=lambda n: place_in_round(f"default/{n}"))
    assert rounds == [by_place] * len(instants)
