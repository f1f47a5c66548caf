"""The outbox: never blocks the caller, keeps order per destination, paces, retries, then drops."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
import pytest

from canary.domain.alerts import ProviderType
from canary.errors import DeliveryError
from canary.notify.base import Notice
from canary.notify.chat import ChatNotifier, ChatTarget
from canary.notify.outbox import DeliverySettings, Outbox
from tests.notify.conftest import HookServer, Reply
from tests.notify.samples import rollback_notice

NO_WAIT = DeliverySettings(min_interval=timedelta(0), backoff_initial=timedelta(0), backoff_max=timedelta(0))


@dataclass
class Counter:
    dropped: list[str] = field(default_factory=list)

    def notification_dropped(self, system: str) -> None:
        self.dropped.append(system)


@dataclass
class Recorder:
    """A notifier that fails its first ``failures`` posts, and can be held until released."""

    destination: str = "dest-a"
    system: str = "slack"
    attempts: int = 3
    failures: int = 0
    retryable: bool = True
    gate: asyncio.Event | None = None
    calls: int = 0
    delivered: list[str] = field(default_factory=list)

    async def post(self, notice: Notice) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures > 0:
            self.failures -= 1
            raise DeliveryError("HTTP 500", retryable=self.retryable)
        self.delivered.append(notice.message)


def notice(text: str) -> Notice:
    return rollback_notice(text)


async def test_submit_returns_before_a_held_destination_answers_and_order_is_kept() -> None:
    outbox = Outbox(Counter(), NO_WAIT)
    held = Recorder(gate=asyncio.Event())
    assert outbox.submit(held, notice("one")) and outbox.submit(held, notice("two"))
    assert held.delivered == []  # submit did not wait for the post
    held.gate.set()  # type: ignore[union-attr]
    await outbox.drain()
    assert held.delivered == ["one", "two"]


async def test_a_held_destination_does_not_delay_another() -> None:
    outbox = Outbox(Counter(), NO_WAIT)
    held, other = Recorder(gate=asyncio.Event()), Recorder(destination="dest-b")
    outbox.submit(held, notice("stuck"))
    outbox.submit(other, notice("free"))
    while not other.delivered:
        await asyncio.sleep(0)
    assert other.delivered == ["free"] and held.delivered == []
    held.gate.set()  # type: ignore[union-attr]
    await outbox.drain()


async def test_a_failed_post_is_retried_then_delivered() -> None:
    counter = Counter()
    outbox = Outbox(counter, NO_WAIT)
    flaky = Recorder(failures=2, attempts=3)
    outbox.submit(flaky, notice("late"))
    await outbox.drain()
    assert (flaky.calls, flaky.delivered, counter.dropped) == (3, ["late"], [])


async def test_retries_spent_drop_the_notice_with_a_count() -> None:
    counter = Counter()
    outbox = Outbox(counter, NO_WAIT)
    dead = Recorder(failures=10, attempts=3)
    outbox.submit(dead, notice("lost"))
    outbox.submit(dead, notice("also lost"))
    await outbox.drain()
    assert (dead.calls, dead.delivered, counter.dropped) == (6, [], ["slack", "slack"])


async def test_an_answer_that_cannot_change_is_not_retried() -> None:
    counter = Counter()
    outbox = Outbox(counter, NO_WAIT)
    refused = Recorder(failures=10, attempts=5, retryable=False)
    outbox.submit(refused, notice("bad token"))
    await outbox.drain()
    assert (refused.calls, counter.dropped) == (1, ["slack"])


async def test_a_full_queue_drops_the_new_notice() -> None:
    counter = Counter()
    outbox = Outbox(counter, DeliverySettings(capacity=2, min_interval=timedelta(0)))
    held = Recorder(gate=asyncio.Event())
    results = [outbox.submit(held, notice(str(i))) for i in range(4)]
    # The worker has not run yet: two fit the queue, the other two are dropped.
    assert results == [True, True, False, False] and counter.dropped == ["slack", "slack"]
    held.gate.set()  # type: ignore[union-attr]
    await outbox.drain()
    assert held.delivered == ["0", "1"]


async def test_posts_to_one_destination_are_paced() -> None:
    now = [100.0]
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    outbox = Outbox(Counter(), DeliverySettings(min_interval=timedelta(seconds=1)), sleep=sleep,
                    clock=lambda: now[0])
    rec = Recorder()
    for i in range(3):
        outbox.submit(rec, notice(str(i)))
    await outbox.drain()
    assert rec.delivered == ["0", "1", "2"] and pauses == [1.0, 1.0]


# --- through HTTP ------------------------------------------------------------------------------


async def test_a_chat_post_answered_500_is_retried_then_dropped(hook_server: HookServer,
                                                                session: aiohttp.ClientSession) -> None:
    counter = Counter()
    outbox = Outbox(counter, NO_WAIT)
    url = hook_server.script("/slack", Reply(500))
    outbox.submit(ChatNotifier(session, ChatTarget(ProviderType.SLACK, url), attempts=3), rollback_notice())
    await outbox.drain()
    assert len(hook_server.bodies("/slack")) == 3 and counter.dropped == ["slack"]


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, True), (404, False), (400, False)])
async def test_chat_answers_map_to_delivery_errors(hook_server: HookServer, session: aiohttp.ClientSession,
                                                   status: int, retryable: bool) -> None:
    url = hook_server.script("/hook", Reply(status))
    with pytest.raises(DeliveryError) as caught:
        await ChatNotifier(session, ChatTarget(ProviderType.DISCORD, url)).post(rollback_notice())
    assert caught.value.retryable is retryable and f"HTTP {status}" in str(caught.value)


async def test_a_chat_post_sends_the_systems_json(hook_server: HookServer,
                                                                session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/teams", Reply(200))
    await ChatNotifier(session, ChatTarget(ProviderType.MSTEAMS, url, token="t0k")).post(rollback_notice())
    [received] = hook_server.received
    assert received.content_type == "application/json" and received.body["type"] == "message"
