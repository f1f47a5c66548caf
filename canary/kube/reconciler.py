"""One asyncio task per Canary: observe from the caches, decide, write status, act, sleep.

The task sleeps until the decision's ``requeue_after`` or until a watch event on the Canary or
anything it depends on wakes it, whichever is first; an idle Canary therefore costs nothing,
and an on-call annotation is acted on as soon as its watch event arrives.

Each pass decides from one snapshot of the caches, and every write is conditional on that
snapshot (see ``execute``). The Canary's own status is no exception: there is no in-memory copy
that outranks what the API server stores, so a status written by anyone else (another replica,
a person) is what the next decision starts from. The one thing kept in memory is a status that
changed only in soft fields (a tick at a closed gate, a judge look) and was not written yet;
it is used only while the stored status is still the one it was derived from (see
``quiet_status``), and repeated Events are folded into one (``event_series``). A refused write
re-reads the object it was refused for and decides again. An error the pass cannot get past is
reported on the Canary as ``Stalled`` with its message, not retried in silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog

from canary.config import Settings
from canary.domain.actions import SetFinalizer
from canary.domain.machine import Decision, NeedProbes, Probe, decide, decide_invalid
from canary.domain.observed import Problem
from canary.domain.schedule import place_in_round
from canary.domain.spec import parse_canary_spec
from canary.domain.status import CanaryStatus, CheckResult
from canary.errors import ApiError, CanaryError, SpecError
from canary.kube.api import REVERT_FINALIZER
from canary.kube.cache import ClusterCache, Kind, ObjectKey, resource_version
from canary.kube.event_series import EventSeries
from canary.kube.execute import Executor, StaleWrite, Target
from canary.kube.fence import WRITE_GUARD, LeaseGuard, NotLeading
from canary.kube.observe import observe
from canary.kube.probes import ProbeRunner
from canary.kube.quiet_status import QuietStatus
from canary.kube.routes import RouterDirectory
from canary.kube.shard_plan import bucket_of
from canary.kube.startup_burst import StartupBurst
from canary.telemetry import ControllerMetrics, RunResult, bind_canary

#: Back-off after an unexpected error, doubling up to the maximum.
ERROR_BACKOFF = timedelta(seconds=2)
ERROR_BACKOFF_MAX = timedelta(seconds=60)
IDLE_RECHECK = timedelta(minutes=10)
#: Transient API failures in a row before the Canary reports Stalled (about 30 s of back-off);
#: any other error reports it at once.
TRANSIENT_FAILURES_BEFORE_STALLED = 4


@dataclass
class Services:
    """Everything a reconciler needs, built once by the operator."""

    settings: Settings
    cache: ClusterCache
    executor: Executor
    probes: ProbeRunner
    routers: RouterDirectory
    metrics: ControllerMetrics


class WakeFlag:
    """``asyncio.Event``'s set, clear and wait, without the deque of waiters an Event makes at once
    (about 0.7 KiB, for every Canary): a reconciler has one waiter, its own task. ``wait_until``
    gives the wait a deadline without the task ``asyncio.wait_for`` makes for every wait."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[bool] | None = None

    def set(self) -> None:
        self._set = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(False)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        await self.wait_until(None)

    async def wait_until(self, when: float | None) -> bool:
        """Wait until the flag is set or the loop's clock reaches ``when`` (None: no deadline);
        True if the deadline came first. Deadlines fire in the order of their ``when``, which
        :func:`place_in_round` relies on."""
        if self._set:
            return False
        loop = asyncio.get_running_loop()
        if self._waiter is None or self._waiter.done():
            # A wait cancelled (task cancelled) cancels this future too; the next wait makes another.
            self._waiter = loop.create_future()
        waiter = self._waiter
        if when is None:
            return await waiter
        timer = loop.call_at(when, _time_is_up, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            if self._waiter is waiter and waiter.done():
                self._waiter = None


def _time_is_up(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


class CanaryReconciler:
    def __init__(self, key: ObjectKey, services: Services, first_passes: StartupBurst | None = None) -> None:
        self.key = key
        self.services = services
        self._first_passes = first_passes
        self._wake = WakeFlag()
        self._task: asyncio.Task[None] | None = None
        self._passes = 0
        self._backoff = ERROR_BACKOFF
        self._failures = 0
        self._quiet = QuietStatus()
        self._events = EventSeries()

    @property
    def log(self) -> structlog.stdlib.BoundLogger:
        # Bound when a line is written (failures only), not kept: a bound logger held by every
        # reconciler was about 3 KiB per Canary.
        return bind_canary(self.key.namespace, self.key.name)

    def start(self) -> None:
        if self._task is None:
            # In a context of its own holding only the write fence: started from kopf's handler
            # for the Canary's first event, the task would otherwise inherit kopf's context
            # variables for that call, and with them keep that event's whole raw body
            # (managedFields and all) for as long as the Canary exists.
            context = contextvars.Context()
            context.run(WRITE_GUARD.set, WRITE_GUARD.get())
            self._task = asyncio.create_task(self._loop(), name=f"canary:{self.key.namespace}/{self.key.name}",
                                             context=context)
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        # Planned passes wake this long after they are due, so the Canaries due together run in
        # the same order every round (see place_in_round).
        place = place_in_round(f"{self.key.namespace}/{self.key.name}").total_seconds()
        due: float | None = None  # loop time of the pass the last decision asked for
        while True:
            wake_at = None if due is None else due + place
            timed_out = await self._wake.wait_until(wake_at)
            if not timed_out and (wake_at is None or loop.time() < wake_at):
                # A watch event: bursts (a rollout touches a Deployment many times) collapse into
                # one pass. Never past a planned pass: those run on time, undebounced.
                debounce = self.services.settings.debounce.total_seconds()
                wait = debounce if wake_at is None else min(debounce, max(wake_at - loop.time(), 0.0))
                await asyncio.sleep(wait)
            self._wake.clear()
            async with self._admission():
                started = loop.time()
                if due is not None and (timed_out or started >= due):
                    # From the planned instant, the place in the round included: it is lateness too.
                    self.services.metrics.tick_late(max(started - due, 0.0))
                delay = await self.run_pass()
            # From when this pass started, not when it ended: the decision's ``requeue_after``
            # was reckoned from that moment, and measuring from the end would make every
            # planned pass late by the time this one took.
            due = None if delay is None else started + delay.total_seconds()

    def _admission(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A first pass waits its turn among the others; later passes (ticks, on-call
        annotations) never wait."""
        if self._passes == 0 and self._first_passes is not None:
            return self._first_passes.admit()
        return contextlib.nullcontext()

    async def run_pass(self, now: datetime | None = None) -> timedelta | None:
        """One reconciliation with its failures handled; returns when to run again (None: on
        the next watch event only)."""
        try:
            delay = await self.reconcile_once(now)
        except asyncio.CancelledError:
            raise
        except NotLeading as exc:
            # The process is losing its Lease and will exit; nothing may be written, not even
            # the report of this.
            self.log.warning("not leading; write refused", error=str(exc))
            return self._backoff
        except StaleWrite as exc:
            # Someone else wrote since we looked: look again at once, never repeat the write.
            self.services.metrics.reconcile_failed(self.key.namespace, self.key.name)
            self.log.info("write refused as stale; re-reading and deciding again", error=str(exc))
            try:
                await self._reread(exc)
            except Exception as reread_exc:  # noqa: BLE001 - the watch catches up instead
                self.log.warning("re-read failed", error=str(reread_exc))
                return ERROR_BACKOFF
            return timedelta(0)
        except Exception as exc:  # noqa: BLE001 - one Canary's failure must not stop the loop
            self._failures += 1
            delay = self._backoff
            self._backoff = min(self._backoff * 2, ERROR_BACKOFF_MAX)
            self.services.metrics.reconcile_failed(self.key.namespace, self.key.name)
            self.log.warning("reconcile failed; retrying", error=str(exc), error_type=type(exc).__name__,
                             retry_in=delay.total_seconds())
            transient = isinstance(exc, ApiError) and self._failures < TRANSIENT_FAILURES_BEFORE_STALLED
            # Reported after this block, from the message alone: awaited in here, the exception
            # kept its traceback, every frame in it and the failed request and response alive
            # until the report's own write got a worker thread, for every failing Canary at once
            # (some 50 MiB at a thousand Canaries failing together).
            stalled = None if transient else f"{type(exc).__name__}: {exc}"
        else:
            self._backoff, self._failures = ERROR_BACKOFF, 0
            return delay
        if stalled is not None:
            await self._report_stalled(stalled)
        return delay

    async def reconcile_once(self, now: datetime | None = None) -> timedelta | None:
        services = self.services
        canary = services.cache.get(self.key)
        if canary is None:
            return None
        fresh_start = self._passes == 0
        self._passes += 1
        stored = CanaryStatus.from_dict(canary.get("status"))
        status = self._quiet.current(stored)
        now = now or datetime.now(timezone.utc)
        meta = canary["metadata"]
        try:
            spec = parse_canary_spec(canary.get("spec") or {})
        except SpecError as exc:
            problem = Problem(exc.field, "InvalidSpec", str(exc))
            deleting_with_finalizer = bool(meta.get("deletionTimestamp")) and REVERT_FINALIZER in (
                meta.get("finalizers") or ())
            await self._apply(canary, None, stored,
                              decide_invalid(status, problem, int(meta.get("generation") or 0), now,
                                             deleting_with_finalizer=deleting_with_finalizer))
            return None

        router, router_problem = await services.routers.router_for(spec, self.key.namespace)
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
        await self._apply(canary, target, stored, decision)
        # ``is None``, not ``or``: a requeue of zero means "now", not "in ten minutes".
        return IDLE_RECHECK if decision.requeue_after is None else decision.requeue_after

    async def _reread(self, stale: StaleWrite) -> None:
        """Replace the cached copy a write was refused for with the API server's, unless the
        watch has already brought a newer one."""
        canary = self.services.cache.get(self.key)
        router = None
        if stale.key.kind is Kind.ROUTE and canary is not None:
            try:
                spec = parse_canary_spec(canary.get("spec") or {})
            except SpecError:
                return
            router, _ = await self.services.routers.router_for(spec, self.key.namespace)
        current = await self.services.executor.read_current(stale.key, router)
        self.services.cache.refresh(stale.key, current, stale.seen)

    async def _report_stalled(self, error: str) -> None:
        """Say on the Canary why it is stuck: Stalled with the error, and one Event per message."""
        canary = self.services.cache.get(self.key)
        if canary is None:
            return
        problem = Problem("", "ReconcileError", f"reconciling failed and is retried with back-off: {error}"[:1024])
        generation = int(canary["metadata"].get("generation") or 0)
        try:
            # Inside the try: a status that cannot be read (hand-edited) is itself a reason the
            # pass fails, and rewriting it from defaults would lose what it holds.
            stored = CanaryStatus.from_dict(canary.get("status"))
            status = self._quiet.current(stored)
            await self._apply(canary, None, stored, decide_invalid(status, problem, generation,
                                                                   datetime.now(timezone.utc)))
        except Exception as report_exc:  # noqa: BLE001 - the log line is all that is left
            self.log.warning("could not report the failure on the Canary", error=str(report_exc))

    async def _apply(self, canary: Mapping[str, Any], target: Target | None, old: CanaryStatus,
                     decision: Decision) -> None:
        """Carry out ``decision``; ``old`` is the status the API server stores (the diff is
        against it, whatever status the decision was derived from)."""
        services = self.services
        new = decision.status
        stored: Mapping[str, Any] | None = None
        # Status first: if we die after this line, the next reconciliation derives the same
        # actions from it. Actions first would let a restart repeat a step. A quiet status is
        # held back: the actions of a status that differs from the stored one only in soft
        # fields are the stored one's too, so a crash still derives them again.
        if self._quiet.must_write(old, new):
            stored = await services.executor.write_status(canary, old, new)
            self._quiet.written()
        if stored is not None:
            # The watch delivers our own write a little later; until then the cache must not
            # hand the next pass the status we just replaced.
            services.cache.refresh(self.key, stored, resource_version(canary))
            if target is not None:
                target.written[self.key] = resource_version(stored)
        for event in decision.events:
            await services.executor.record(canary, target.spec if target is not None else None, event, new,
                                           self._events)
        if not self._quiet.holding:
            # Repeats are counted into their Event when the status is written, not more often.
            await services.executor.flush_events(canary, self._events)
        if target is not None:
            for action in decision.actions:
                await services.executor.run(target, action, new)
        else:
            # Without a usable spec the only action there can be is letting a deletion go.
            for action in decision.actions:
                if isinstance(action, SetFinalizer):
                    current = stored if stored is not None else canary
                    await services.executor.set_finalizer(current, resource_version(current), action.present)
        self._record_metrics(decision)

    def _record_metrics(self, decision: Decision) -> None:
        m, ns, name = self.services.metrics, self.key.namespace, self.key.name
        m.observe_status(ns, name, decision.status)
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
    """Starts, wakes and stops one reconciler per Canary.

    With sharding (``buckets``), only the Canaries of the buckets this replica holds get a
    reconciler: the caches still see every Canary, so a bucket :meth:`claim`-ed later starts its
    Canaries from them at once. Each such reconciler's task is created with ``WRITE_GUARD`` set
    to its bucket's guard, so every write it (or a task it spawns) sends is checked against
    that bucket's Lease.
    """

    def __init__(self, services: Services, *, buckets: int = 0, startup: StartupBurst | None = None) -> None:
        self.services = services
        self._reconcilers: dict[ObjectKey, CanaryReconciler] = {}
        self._buckets = buckets
        #: Guards of the buckets held (sharding only).
        self._guards: dict[int, LeaseGuard] = {}
        #: Every Canary seen, by bucket (sharding only): what a claimed bucket starts.
        self._known: dict[int, set[ObjectKey]] = {}
        self._first_passes = startup or StartupBurst()

    def _bucket(self, key: ObjectKey) -> int:
        return bucket_of(key.namespace, key.name, self._buckets)

    def _start(self, key: ObjectKey) -> CanaryReconciler | None:
        """The Canary's reconciler, started if it may run here; None when another replica's."""
        reconciler = self._reconcilers.get(key)
        if reconciler is not None:
            return reconciler
        guard = None
        if self._buckets:
            guard = self._guards.get(self._bucket(key))
            if guard is None:
                return None
        reconciler = self._reconcilers[key] = CanaryReconciler(key, self.services, self._first_passes)
        # The task copies the context it is created in: the guard goes with it for its life.
        token = WRITE_GUARD.set(guard)
        try:
            reconciler.start()
        finally:
            WRITE_GUARD.reset(token)
        return reconciler

    def canary_changed(self, key: ObjectKey, body: Mapping[str, Any]) -> None:
        self.services.cache.put(key, body)
        if self._buckets:
            self._known.setdefault(self._bucket(key), set()).add(key)
        reconciler = self._start(key)
        if reconciler is not None:
            reconciler.wake()

    async def canary_deleted(self, key: ObjectKey) -> None:
        self.services.cache.remove(key)
        self.services.cache.forget_canary(key)
        self.services.metrics.forget(key.namespace, key.name)
        if self._buckets:
            self._known.get(self._bucket(key), set()).discard(key)
        reconciler = self._reconcilers.pop(key, None)
        if reconciler is not None:
            await reconciler.stop()

    def claim(self, bucket: int, guard: LeaseGuard) -> None:
        """This replica holds ``bucket`` now: start its Canaries, their writes checked by ``guard``."""
        self._guards[bucket] = guard
        for key in sorted(self._known.get(bucket, ())):
            if (reconciler := self._start(key)) is not None:
                reconciler.wake()

    async def release_bucket(self, bucket: int) -> None:
        """Stop the reconcilers of ``bucket``'s Canaries (its guard is revoked by then), and drop
        their per-Canary series: the new holder exports them now, and two replicas exporting
        one Canary's phase would double every sum over replicas."""
        self._guards.pop(bucket, None)
        keys = sorted(self._known.get(bucket, ()))
        stopping = [self._reconcilers.pop(key) for key in keys if key in self._reconcilers]
        await asyncio.gather(*(reconciler.stop() for reconciler in stopping))
        for key in keys:
            self.services.metrics.forget(key.namespace, key.name)

    def held_buckets(self) -> frozenset[int]:
        return frozenset(self._guards)

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
