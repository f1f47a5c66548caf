"""Readiness: both backends must have answered within the grace period."""

from __future__ import annotations

from datetime import timedelta

from canary.errors import ProviderUnavailable
from canary.metrics.prometheus import Series
from canary.metricsserver.health import Readiness, probe_once
from canary.metricsserver.inventory import InventoryUnavailable

from .conftest import FakeInventory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Runner:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.queries: list[str] = []

    async def query(self, promql: str) -> list[Series]:
        self.queries.append(promql)
        if self.error is not None:
            raise self.error
        return [({}, 1.0)]


class DownInventory(FakeInventory):
    async def check(self) -> None:
        raise InventoryUnavailable("no answer", 0)


async def test_ready_once_both_answered_and_until_the_grace_runs_out() -> None:
    clock = Clock()
    readiness = Readiness(timedelta(seconds=60), clock)
    assert len(readiness.problems()) == 2
    runner = Runner()
    await probe_once(readiness, runner, FakeInventory())
    assert readiness.problems() == [] and runner.queries == ["vector(1)"]
    clock.now += 61
    assert len(readiness.problems()) == 2


async def test_each_backend_counts() -> None:
    readiness = Readiness(timedelta(seconds=60), Clock())
    await probe_once(readiness, Runner(ProviderUnavailable("Prometheus at x did not answer")), FakeInventory())
    assert readiness.problems() == ["Prometheus has not answered recently"]
    assert "Prometheus at x" in readiness.last_error
    await probe_once(readiness, Runner(), DownInventory())
    # The Kubernetes API answered the first probe, within the grace period: still ready.
    assert readiness.problems() == [] and "the Kubernetes API: no answer" in readiness.last_error
    fresh = Readiness(timedelta(seconds=60), Clock())
    await probe_once(fresh, Runner(), DownInventory())
    assert fresh.problems() == ["the Kubernetes API has not answered recently"]


async def test_a_probe_that_raises_something_unexpected_does_not_stop_the_loop() -> None:
    readiness = Readiness(timedelta(seconds=60), Clock())
    await probe_once(readiness, Runner(RuntimeError("bug")), FakeInventory())
    assert readiness.problems() == ["Prometheus has not answered recently"]
