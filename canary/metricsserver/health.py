"""``/readyz``: ready while Prometheus and the Kubernetes API have answered recently.

Both are probed every ``interval`` in the background (Prometheus with ``vector(1)``, the API with
a one-item list of namespaces), and every real request that got an answer counts as well. Before
the first answers, and once the last one is older than ``grace``, the server is not ready.

Trade-off, on purpose: while Prometheus is down the Pod turns unready after ``grace``, the
Service loses its endpoint, and the aggregator answers for this API with its own 503 instead of
this server's Status naming Prometheus. Within ``grace`` (60 s), the answers are this server's
503s with the Prometheus error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from canary.errors import CanaryError
from canary.metricsserver.inventory import Inventory
from canary.metricsserver.traffic import QueryRunner

_log = structlog.stdlib.get_logger("canary.metricsserver")


class Readiness:
    def __init__(self, grace: timedelta, clock: Callable[[], float] = time.monotonic) -> None:
        self._grace = grace.total_seconds()
        self._clock = clock
        self.prometheus_at: float | None = None
        self.kube_at: float | None = None
        self.last_error: str = "not probed yet"

    def prometheus_answered(self) -> None:
        self.prometheus_at = self._clock()

    def kube_answered(self) -> None:
        self.kube_at = self._clock()

    def problems(self) -> list[str]:
        """Why the server is not ready; empty when it is."""
        now = self._clock()
        out = []
        if self.prometheus_at is None or now - self.prometheus_at > self._grace:
            out.append("Prometheus has not answered recently")
        if self.kube_at is None or now - self.kube_at > self._grace:
            out.append("the Kubernetes API has not answered recently")
        return out


async def probe_forever(readiness: Readiness, runner: QueryRunner, inventory: Inventory,
                        interval: timedelta) -> None:
    """Probe both backends every ``interval`` until cancelled; failures are logged, never raised."""
    while True:
        await probe_once(readiness, runner, inventory)
        await asyncio.sleep(interval.total_seconds())


async def probe_once(readiness: Readiness, runner: QueryRunner, inventory: Inventory) -> None:
    async def prometheus() -> None:
        await runner.query("vector(1)")

    await asyncio.gather(
        _attempt("Prometheus", prometheus, readiness.prometheus_answered, readiness),
        _attempt("the Kubernetes API", inventory.check, readiness.kube_answered, readiness),
    )


async def _attempt(what: str, probe: Callable[[], Awaitable[None]], record: Callable[[], None],
                   readiness: Readiness) -> None:
    try:
        await probe()
    except (CanaryError, OSError, TimeoutError) as exc:
        readiness.last_error = f"{what}: {exc}"
        _log.warning("readiness probe failed", target=what, error=str(exc))
        return
    except Exception as exc:  # a bug must not end the probe loop: readiness would freeze
        readiness.last_error = f"{what}: {exc}"
        _log.exception("readiness probe raised", target=what)
        return
    record()
