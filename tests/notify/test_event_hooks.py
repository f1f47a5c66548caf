"""Webhooks of type event through the notifier port: Flagger's payload, its retries spent by the outbox."""

from __future__ import annotations

from datetime import timedelta

import aiohttp

from canary.domain.spec import WebhookSpec, WebhookType
from canary.notify.event_hooks import EventHook
from canary.notify.outbox import DeliverySettings, Outbox
from tests.notify.conftest import HookServer, Reply
from tests.notify.samples import rollback_notice
from tests.notify.test_outbox import Counter

NO_WAIT = DeliverySettings(min_interval=timedelta(0), backoff_initial=timedelta(0), backoff_max=timedelta(0))


async def test_an_event_hook_gets_flaggers_event_payload(hook_server: HookServer,
                                                         session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/events", Reply(500), Reply(200))
    hook = WebhookSpec(name="events", type=WebhookType.EVENT, url=url, retries=1, metadata={"team": "shop"})
    counter = Counter()
    outbox = Outbox(counter, NO_WAIT)
    outbox.submit(EventHook(session, hook), rollback_notice("rolled back"))
    await outbox.drain()
    first, second = hook_server.bodies("/events")
    assert first == second == {
        "name": "podinfo", "namespace": "shop", "phase": "Failed", "checksum": "abc123",
        "metadata": {"team": "shop", "eventMessage": "rolled back", "eventType": "Warning"},
    }
    assert counter.dropped == []


async def test_an_event_hook_refusing_with_4xx_is_not_asked_again(hook_server: HookServer,
                                                                  session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/events", Reply(403))
    hook = WebhookSpec(name="events", type=WebhookType.EVENT, url=url, retries=5)
    counter = Counter()
    outbox = Outbox(counter, NO_WAIT)
    outbox.submit(EventHook(session, hook), rollback_notice())
    await outbox.drain()
    assert len(hook_server.bodies("/events")) == 1 and counter.dropped == ["webhook"]
