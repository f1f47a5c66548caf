"""Webhooks of type ``event``: each Kubernetes Event, POSTed as Flagger does (``eventMessage``,
``eventType`` in the metadata), through the outbox like a chat alert."""

from __future__ import annotations

from dataclasses import dataclass, replace

import aiohttp

from canary.domain.spec import WebhookSpec
from canary.domain.status import Phase
from canary.errors import DeliveryError
from canary.notify.base import Notice
from canary.notify.webhooks import WebhookPayload, call_webhook

__all__ = ["EventHook"]


@dataclass(frozen=True)
class EventHook:
    session: aiohttp.ClientSession
    hook: WebhookSpec
    system = "webhook"

    @property
    def destination(self) -> str:
        return self.hook.url

    @property
    def attempts(self) -> int:
        # The hook's own retries, spent by the outbox (with its pacing) rather than inline.
        return self.hook.retries + 1

    async def post(self, notice: Notice) -> None:
        payload = WebhookPayload.for_event(
            name=notice.name, namespace=notice.namespace, phase=notice.facts.phase or Phase.INITIALIZING,
            checksum=notice.facts.revision, message=notice.message,
            event_type="Warning" if notice.warning else "Normal",
        )
        outcome = await call_webhook(self.session, replace(self.hook, retries=0), payload)
        if not outcome.passed:
            # A 4xx is the endpoint's deliberate answer; asking again cannot change it.
            retryable = outcome.status is None or outcome.status >= 500 or outcome.status == 429
            raise DeliveryError(f"event webhook {self.hook.name}: {outcome.message}", retryable=retryable)
