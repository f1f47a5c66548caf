"""One asyncio task per Canary: observe from the caches, decide, write status, act, sleep.

The task sleeps until the decision's ``requeue_after`` or until a watch event on the Canary or
anything it depends on wakes it, whichever is first; an idle Canary therefore costs nothing,
and an on-call annotation is acted on as soon as its watch event arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from canary.config import Settings
from canary.domain.machine import Decision, NeedProbes, Probe, decide, decide_invalid
from canary.domain.observed import Problem
from canary.domain.spec import WebhookType, parse_canary_spec
from canary.domain.status import CanaryStatus, CheckResult
from canary.errors import CanaryError, SpecError
from canary.kube.cache import ClusterCache, ObjectKey
from canary.kube.execute import Executor, Target
from canary.kube.observe import observe
from canary.kube.probes import ProbeRunner
from canary.kube.routes import RouterDirectory
from canary.telemetry import ControllerMetrics, RunResult, bind_canary

#: Back-off after an unexpected error, doubling up to the maximum.
ERROR_BACKOFF = timedelta(seconds=2)
ERROR_BACKOFF_MAX = timedelta(seconds=60)
IDLE_RECHECK = timedelta(minutes=10)


@dataclass
class Services:
    """Everything a reconciler needs, built once by the operator."""

    settings: Settings
    cache: ClusterCache
    executor: Executor
    probes: ProbeRunner
    routers: RouterDirectory
    metrics: ControllerMetrics


class CanaryReconciler:
    def __init__(self, key: ObjectKey, services: Services) -> None:
        self.key = key
        self.services = services
        self.log = bind_canary(key.namespace, key.name)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: The status we last wrote. The watch may deliver our own write late; deciding from a
        #: stale status would repeat a step, so ours wins over the cache's copy.
        self._status: CanaryStatus | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"canary:{self.key.namespace}/{self.key.name}")
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    @property
    def last_status(self) -> CanaryStatus | None:
        return self._status

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        delay: timedelta | None = None
        backoff = ERROR_BACKOFF
        while True:
            timeout = None if delay is None else max(delay.total_seconds(), 0.0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            self._wake.clear()
            # Bursts of watch events (a rollout touches a Deployment many times) collapse into one pass.
            await asyncio.sleep(self.services.settings.debounce.total_seconds())
            self._wake.clear()
            try:
                delay = await self.reconcile_once()
                backoff = ERROR_BACKOFF
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one Canary's failure must not stop the loop
                self.services.metrics.reconcile_failed(self.key.namespace, self.key.name)
                self.log.warning("reconcile failed; retrying", error=str(exc), error_type=type(exc).__name__,
                                 retry_in=backoff.total_seconds())
                delay = backoff
                backoff = min(backoff * 2, ERROR_BACKOFF_MAX)

    async def reconcile_once(self, now: datetime | None = None) -> timedelta | None:
        services = self.services
        canary = services.cache.get(self.key)
        if canary is None:
            return None
        fresh_start = self._status is None
        status = self._current_status(canary)
        now = now or datetime.now(timezone.utc)
        meta = canary["metadata"]
        try:
            spec = parse_canary_spec(canary.get("spec") or {})
        except SpecError as exc:
            problem = Problem(exc.field, "InvalidSpec", str(exc))
            await self._apply(canary, None, status,
                              decide_invalid(status, problem, int(meta.get("generation") or 0), now))
            return None

        router, router_problem = await services.routers.router_for(spec)
        observation = observe(canary, spec, services.cache, router, router_problem)
        if fresh_start:
            observation = replace(observation, observed=replace(observation.observed, fresh_start=True))
        services.cache.set_dependencies(self.key, observation.dependencies)
        target = Target(canary=canary, spec=spec, observation=observation, router=router)

        probes: dict[Probe, tuple[CheckResult, ...]] = {}
        result: Decision | NeedProbes = decide(spec, status, observation.observed, now, probes)
        rounds = 0
        while isinstance(result, NeedProbes):
            rounds += 1
            if rounds > len(Probe):
                raise CanaryError(f"decide asked for probes {sorted(result.probes)} again")
            probes.update(await services.probes.run(result.probes, target, status, now))
            result = decide(spec, status, observation.observed, now, probes)
        decision = result
        await self._apply(canary, target, status, decision)
        return decision.requeue_after or IDLE_RECHECK

    def _current_status(self, canary: Mapping[str, Any]) -> CanaryStatus:
        if self._status is None:
            self._status = CanaryStatus.from_dict(canary.get("status"))
        return self._status

    async def _apply(self, canary: Mapping[str, Any], target: Target | None, old: CanaryStatus,
                     decision: Decision) -> None:
        services = self.services
        new = decision.status
        # Status first: if we die after this line, the next reconciliation derives the same
        # actions from it. Actions first would let a restart repeat a step.
        await services.executor.write_status(self.key.namespace, self.key.name, old, new)
        self._status = new
        hooks = target.spec.analysis.hooks(WebhookType.EVENT) if target is not None else ()
        for event in decision.events:
            await services.executor.record(canary, hooks, event, new)
        if target is not None:
            for action in decision.actions:
                await services.executor.run(target, action, new)
        self._record_metrics(decision)

    def _record_metrics(self, decision: Decision) -> None:
        m, ns, name = self.services.metrics, self.key.namespace, self.key.name
        status = decision.status
        if status.phase is not None:
            m.set_phase(ns, name, status.phase)
        m.set_weight(ns, name, status.canary_weight)
        m.set_failed_checks(ns, name, status.failed_checks)
        m.observe_checks(ns, name, status.checks)
        outcome = decision.outcome
        if outcome is None:
            return
        duration = (datetime.now(timezone.utc) - outcome.started) if outcome.started else timedelta(0)
        if outcome.promoted:
            m.promoted(ns, name)
            m.run_finished(ns, name, RunResult.SUCCEEDED, duration)
        else:
            m.rolled_back(ns, name, outcome.cause or "")
            m.run_finished(ns, name, RunResult.FAILED, duration)


class ReconcilerRegistry:
    """Starts, wakes and stops one reconciler per Canary."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._reconcilers: dict[ObjectKey, CanaryReconciler] = {}

    def canary_changed(self, key: ObjectKey, body: Mapping[str, Any]) -> None:
        self.services.cache.put(key, body)
        reconciler = self._reconcilers.get(key)
        if reconciler is None:
            reconciler = self._reconcilers[key] = CanaryReconciler(key, self.services)
            reconciler.start()
        reconciler.wake()

    async def canary_deleted(self, key: ObjectKey) -> None:
        self.services.cache.remove(key)
        self.services.cache.forget_canary(key)
        self.services.metrics.forget(key.namespace, key.name)
        reconciler = self._reconcilers.pop(key, None)
        if reconciler is not None:
            await reconciler.stop()

    def object_changed(self, key: ObjectKey, body: Mapping[str, Any] | None) -> None:
        if body is None:
            self.services.cache.remove(key)
        else:
            self.services.cache.put(key, body)
        for canary in self.services.cache.dependents(key):
            if (reconciler := self._reconcilers.get(canary)) is not None:
                reconciler.wake()

    def get(self, key: ObjectKey) -> CanaryReconciler | None:
        return self._reconcilers.get(key)

    async def stop_all(self) -> None:
        for reconciler in list(self._reconcilers.values()):
            await reconciler.stop()
        self._reconcilers.clear()


__all__ = ["CanaryReconciler", "ReconcilerRegistry", "Services"]
