"""Chat alerts for a Canary: which alerts hear an event, and where their providers point.

The domain says how severe an event is and which of a Canary's alerts hear it; this module
reads each alert's ``AlertProvider`` (and its Secret) from the API server and hands the post to
the outbox. The reads happen in a background task, after the pass: a slow API server or a
missing provider never holds a release. A provider or Secret that is missing or unusable is
reported as a Warning Event on the Canary naming it (reason ``AlertProviderInvalid``), never as
a failed reconciliation. Alerts are rare (a few per release), so providers are read when
needed rather than watched.

A Canary without ``spec.analysis.alerts`` alerts through the controller-wide default provider
(the ``--slack-url`` / ``--msteams-url`` flags), at every severity, as Flagger does.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import aiohttp

from canary.config import AlertSettings
from canary.domain.alerts import AlertSpec, ProviderType, hears, parse_alert_provider_spec, severity_of
from canary.domain.spec import CanarySpec
from canary.errors import DeliveryError, NotFound, SpecError
from canary.kube.api import CANARY_GROUP, CANARY_VERSION, KubeApi
from canary.notify.base import Notice, Notifier
from canary.notify.chat import ChatNotifier, ChatTarget, chat_notifier
from canary.notify.outbox import Outbox
from canary.telemetry import bind_canary

__all__ = ["ALERT_PROVIDER_PLURAL", "Alerting", "PROBLEM_REASON", "default_target"]

ALERT_PROVIDER_PLURAL = "alertproviders"
PROBLEM_REASON = "AlertProviderInvalid"
#: The Secret keys Flagger reads; each wins over the provider's field of the same meaning.
_SECRET_KEYS = ("address", "token", "proxy")


def default_target(settings: AlertSettings) -> ChatTarget | None:
    """The provider the flags configure, if any: Slack first, then Teams, as Flagger picks."""
    if settings.slack_url:
        return ChatTarget(ProviderType.SLACK, settings.slack_url, channel=settings.slack_channel,
                          username=settings.slack_user, proxy=settings.slack_proxy_url)
    if settings.msteams_url:
        return ChatTarget(ProviderType.MSTEAMS, settings.msteams_url, proxy=settings.msteams_proxy_url)
    return None


class _ProviderProblem(Exception):
    """An alert's provider cannot be used; the message names it and says why."""


class Alerting:
    def __init__(self, api: KubeApi, session: aiohttp.ClientSession, outbox: Outbox, events: Notifier,
                 default: ChatTarget | None = None,
                 factory: Callable[[aiohttp.ClientSession, ChatTarget], ChatNotifier] = chat_notifier) -> None:
        self.api = api
        self.session = session
        self.outbox = outbox
        self.events = events
        self.default = default
        self.factory = factory
        self._tasks: set[asyncio.Task[None]] = set()

    def alert(self, spec: CanarySpec, notice: Notice) -> None:
        """Send ``notice`` to the alerts that hear it; returns at once."""
        muted = frozenset(h.name for h in spec.analysis.webhooks if h.mute_alert)
        severity = severity_of(notice.reason, notice.facts, muted)
        if severity is None:
            return
        notice = replace(notice, severity=severity)
        if not spec.analysis.alerts:
            if self.default is not None:
                self.outbox.submit(self.factory(self.session, self.default), notice)
            return
        hearing = [a for a in spec.analysis.alerts if hears(a.severity, severity)]
        if hearing:
            self._spawn(self._resolve_and_submit(hearing, notice))

    async def drain(self) -> None:
        """Wait for the provider look-ups started so far (tests, shutdown)."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # Keep a reference: the event loop holds tasks weakly and would collect a pending one.
        task = asyncio.create_task(coro, name="alert-providers")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve_and_submit(self, alerts: list[AlertSpec], notice: Notice) -> None:
        for alert in alerts:
            try:
                target = await self._target(alert, notice.namespace)
            except _ProviderProblem as exc:
                await self._report(notice, f"alert {alert.name!r} not sent: {exc}")
                continue
            self.outbox.submit(self.factory(self.session, target), notice)

    async def _target(self, alert: AlertSpec, canary_namespace: str) -> ChatTarget:
        namespace = alert.provider_ref.namespace or canary_namespace
        where = f"AlertProvider {namespace}/{alert.provider_ref.name}"
        try:
            provider = await self.api.get_custom(CANARY_GROUP, CANARY_VERSION, namespace, ALERT_PROVIDER_PLURAL,
                                                 alert.provider_ref.name)
        except NotFound as exc:
            raise _ProviderProblem(f"{where} does not exist") from exc
        except Exception as exc:  # noqa: BLE001 - any failed read is reported the same way
            raise _ProviderProblem(f"{where} could not be read: {exc}") from exc
        try:
            spec = parse_alert_provider_spec(provider.get("spec") or {})
        except SpecError as exc:
            raise _ProviderProblem(f"{where} is invalid: {exc}") from exc
        values = {"address": spec.address, "token": "", "proxy": spec.proxy}
        if spec.secret_name:
            values.update(await self._secret(namespace, spec.secret_name, where))
        if not values["address"]:
            raise _ProviderProblem(f"{where} has no address (neither spec.address nor an address key in "
                                   f"Secret {namespace}/{spec.secret_name})")
        return ChatTarget(type=spec.type, address=values["address"], channel=spec.channel,
                          username=spec.username, proxy=values["proxy"], token=values["token"])

    async def _secret(self, namespace: str, name: str, where: str) -> dict[str, str]:
        try:
            secret = self.api.to_dict(await self.api.call(self.api.core.read_namespaced_secret, name, namespace))
        except NotFound as exc:
            raise _ProviderProblem(f"{where}: its Secret {namespace}/{name} does not exist") from exc
        except Exception as exc:  # noqa: BLE001 - any failed read is reported the same way
            raise _ProviderProblem(f"{where}: its Secret {namespace}/{name} could not be read: {exc}") from exc
        data: Mapping[str, Any] = secret.get("data") or {}
        out: dict[str, str] = {}
        for key in _SECRET_KEYS:
            if key in data:
                try:
                    out[key] = base64.b64decode(str(data[key])).decode().strip()
                except ValueError as exc:
                    raise _ProviderProblem(f"{where}: key {key!r} of Secret {namespace}/{name} is not "
                                           "base64-encoded UTF-8") from exc
        return out

    async def _report(self, notice: Notice, message: str) -> None:
        bind_canary(notice.namespace, notice.name).warning("alert not sent", error=message)
        problem = replace(notice, reason=PROBLEM_REASON, message=message, warning=True, severity=None,
                          time=datetime.now(timezone.utc))
        try:
            await self.events.post(problem)
        except DeliveryError:
            pass  # the log line above is the record
