"""Posting an alert to a chat system, and the factory that picks the format by provider type.

Every system takes one JSON POST to its webhook address; only the body differs (one module per
system renders it from the shared :class:`~canary.notify.message.AlertMessage`). A 2xx is
delivered; 429, 5xx and no answer are retried by the outbox; any other 4xx (a revoked webhook,
a malformed body) is dropped at once, since asking again cannot change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from yarl import URL

from canary import __version__
from canary.domain.alerts import ProviderType, Severity
from canary.errors import DeliveryError
from canary.notify import discord, generic, gchat, msteams, rocket, slack
from canary.notify.base import Notice
from canary.notify.message import AlertMessage, alert_message

__all__ = ["ChatNotifier", "ChatTarget", "chat_notifier", "render"]

_USER_AGENT = f"canary/{__version__}"
DEFAULT_ATTEMPTS = 4
POST_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class ChatTarget:
    """Where and how to post: a resolved AlertProvider, or the controller's default from flags."""

    type: ProviderType
    address: str
    channel: str = "general"
    username: str = "canary"
    proxy: str = ""
    token: str = ""


def render(target: ChatTarget, message: AlertMessage, notice: Notice) -> dict[str, Any]:
    """The request body ``target``'s system documents for an incoming webhook."""
    kind = target.type
    if kind is ProviderType.SLACK:
        return slack.render(message, channel=target.channel, username=target.username)
    if kind is ProviderType.MSTEAMS:
        return msteams.render(message)
    if kind is ProviderType.DISCORD:
        return discord.render(message, username=target.username)
    if kind is ProviderType.ROCKET:
        return rocket.render(message, channel=target.channel, username=target.username)
    if kind is ProviderType.GCHAT:
        return gchat.render(message)
    return generic.render(message, notice)


@dataclass(frozen=True)
class ChatNotifier:
    session: aiohttp.ClientSession
    target: ChatTarget
    attempts: int = DEFAULT_ATTEMPTS
    timeout: timedelta = POST_TIMEOUT

    @property
    def system(self) -> str:
        return self.target.type.value

    @property
    def destination(self) -> str:
        return self.target.address

    async def post(self, notice: Notice) -> None:
        body = render(self.target, alert_message(notice, notice.severity or Severity.INFO), notice)
        headers = {"User-Agent": _USER_AGENT}
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        host = URL(self.target.address).host
        try:
            async with self.session.post(self.target.address, json=body, headers=headers,
                                         proxy=self.target.proxy or None, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout.total_seconds())) as resp:
                if 200 <= resp.status < 300:
                    return
                retryable = resp.status == 429 or resp.status >= 500
                raise DeliveryError(f"{self.system} at {host} answered HTTP {resp.status}", retryable=retryable)
        except TimeoutError as exc:
            raise DeliveryError(f"{self.system} at {host}: no answer within {self.timeout.total_seconds():g}s") from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{self.system} at {host}: {exc or type(exc).__name__}") from exc


def chat_notifier(session: aiohttp.ClientSession, target: ChatTarget) -> ChatNotifier:
    return ChatNotifier(session, target)

