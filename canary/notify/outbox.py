"""Delivery that never blocks a release: queued, paced per destination, retried, then dropped.

:meth:`Outbox.submit` returns at once. Each destination (one chat webhook address, one event
webhook URL) has its own bounded queue and one worker, so a slow or dead destination delays
only its own notices, in order, and a burst cannot grow memory without bound. Between two posts
to one destination the worker keeps ``min_interval`` (Slack takes about one message a second per
webhook and answers 429 to more). A post that fails is retried with random exponential back-off
(tenacity) up to the notifier's ``attempts``; then the notice is dropped with a log line and
``canary_notifications_dropped_total{system}``. A full queue drops the new notice the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from canary.errors import DeliveryError
from canary.notify.base import Notice, Notifier

__all__ = ["DeliverySettings", "DropCounter", "Outbox"]

_log = structlog.stdlib.get_logger(__name__)


class DropCounter(Protocol):
    def notification_dropped(self, system: str) -> None: ...


@dataclass(frozen=True)
class DeliverySettings:
    #: Notices waiting per destination; more are dropped (a destination down for long would
    #: otherwise hold every notice of every release in memory).
    capacity: int = 100
    #: Smallest pause between two posts to one destination.
    min_interval: timedelta = timedelta(seconds=1)
    #: Back-off ceiling before the first retry, doubling up to ``backoff_max``.
    backoff_initial: timedelta = timedelta(milliseconds=500)
    backoff_max: timedelta = timedelta(seconds=30)


@dataclass
class _Lane:
    queue: asyncio.Queue[tuple[Notifier, Notice]]
    worker: asyncio.Task[None] | None = None
    last_post: float | None = None


@dataclass
class Outbox:
    counter: DropCounter
    settings: DeliverySettings = field(default_factory=DeliverySettings)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    #: One lane per destination ever posted to: the count of configured destinations, which
    #: is small; a lane keeps its last post time so pacing survives its worker ending.
    _lanes: dict[str, _Lane] = field(default_factory=dict, init=False)

    def submit(self, notifier: Notifier, notice: Notice) -> bool:
        """Queue ``notice`` for ``notifier``; False when it was dropped because the queue is full."""
        lane = self._lanes.get(notifier.destination)
        if lane is None:
            lane = self._lanes[notifier.destination] = _Lane(asyncio.Queue(self.settings.capacity))
        try:
            lane.queue.put_nowait((notifier, notice))
        except asyncio.QueueFull:
            self._drop(notifier, notice, f"{self.settings.capacity} notices already wait for this destination")
            return False
        if lane.worker is None or lane.worker.done():
            lane.worker = asyncio.create_task(self._work(notifier.destination, lane),
                                              name=f"notify:{notifier.system}")
        return True

    async def drain(self) -> None:
        """Wait until every notice submitted so far was delivered or dropped."""
        await asyncio.gather(*(lane.queue.join() for lane in list(self._lanes.values())))

    async def close(self) -> None:
        """Stop the workers; notices still queued are abandoned (the process is exiting)."""
        workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._lanes.clear()

    async def _work(self, destination: str, lane: _Lane) -> None:
        while True:
            try:
                notifier, notice = lane.queue.get_nowait()
            except asyncio.QueueEmpty:
                return  # submit starts a new worker for the next notice
            try:
                await self._pace(lane)
                await self._deliver(notifier, notice)
            except asyncio.CancelledError:
                raise
            except DeliveryError as exc:
                self._drop(notifier, notice, str(exc))
            except Exception as exc:  # noqa: BLE001 - a notifier bug must not kill the lane
                _log.exception("notifier crashed", system=notifier.system)
                self._drop(notifier, notice, f"{type(exc).__name__}: {exc}")
            finally:
                lane.last_post = self.clock()
                lane.queue.task_done()

    async def _pace(self, lane: _Lane) -> None:
        if lane.last_post is None:
            return
        wait = lane.last_post + self.settings.min_interval.total_seconds() - self.clock()
        if wait > 0:
            await self.sleep(wait)

    async def _deliver(self, notifier: Notifier, notice: Notice) -> None:
        log = _log.bind(namespace=notice.namespace, name=notice.name, system=notifier.system)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.info("notification failed, retrying", reason=notice.reason, attempt=state.attempt_number,
                     error=str(error))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(notifier.attempts, 1)),
            wait=wait_random_exponential(multiplier=self.settings.backoff_initial.total_seconds(),
                                         max=self.settings.backoff_max.total_seconds()),
            retry=retry_if_exception(lambda exc: isinstance(exc, DeliveryError) and exc.retryable),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        await retrying(notifier.post, notice)

    def _drop(self, notifier: Notifier, notice: Notice, why: str) -> None:
        self.counter.notification_dropped(notifier.system)
        _log.warning("notification dropped", namespace=notice.namespace, name=notice.name, system=notifier.system,
                     reason=notice.reason, error=why)
