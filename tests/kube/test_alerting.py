"""Alerts as the shell sends them: severity routing to a Canary's AlertProviders, Secrets read
as Flagger reads them, the default provider, and a missing provider reported on the Canary."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import aiohttp
import pytest

from canary.domain.alerts import AlertSpec, ProviderRef, ProviderType, Severity
from canary.domain.spec import CanarySpec, parse_canary_spec
from canary.domain.status import CheckKind
from canary.kube.alerting import PROBLEM_REASON, Alerting
from canary.kube.events import KubernetesEvents
from canary.notify.base import Notice, Notifier
from canary.notify.chat import ChatNotifier, ChatTarget
from tests.kube.fake_cluster import FakeCluster
from tests.notify.samples import rollback_notice


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:  # handed to the notifiers, never used: nothing is posted
        yield s


@dataclass
class Outbox:
    """Records what would be posted."""

    sent: list[tuple[ChatTarget, Notice]] = field(default_factory=list)

    def submit(self, notifier: Notifier, notice: Notice) -> bool:
        assert isinstance(notifier, ChatNotifier)
        self.sent.append((notifier.target, notice))
        return True


def spec(*alerts: AlertSpec, muted: bool = False) -> CanarySpec:
    base = parse_canary_spec({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 80},
        "analysis": {"interval": "1m", "stepWeight": 10,
                     "webhooks": [{"name": "approve", "type": "confirm-rollout", "url": "http://gate.test/",
                                   "muteAlert": muted}]},
    })
    return replace(base, analysis=replace(base.analysis, alerts=alerts))


def provider(cluster: FakeCluster, name: str, namespace: str = "shop", **spec: object) -> None:
    cluster.apply({"apiVersion": "canary.dev/v1alpha1", "kind": "AlertProvider",
                   "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def alerting(cluster: FakeCluster, session: aiohttp.ClientSession, outbox: Outbox,
             default: ChatTarget | None = None) -> Alerting:
    return Alerting(cluster.api, session, outbox, KubernetesEvents(cluster.api), default)  # type: ignore[arg-type]


async def test_each_alert_hears_its_severity_and_worse(session: aiohttp.ClientSession) -> None:
    cluster, outbox = FakeCluster(), Outbox()
    provider(cluster, "chat-info", type="slack", address="http://127.0.0.1:1/info", channel="releases")
    provider(cluster, "chat-error", type="discord", address="http://127.0.0.1:1/error")
    sender = alerting(cluster, session, outbox)
    alerts = (AlertSpec("all", ProviderRef("chat-info"), Severity.INFO),
              AlertSpec("failures", ProviderRef("chat-error"), Severity.ERROR))
    sender.alert(spec(*alerts), replace(rollback_notice(), reason="Started", warning=False, severity=None))
    sender.alert(spec(*alerts), replace(rollback_notice(), severity=None))
    await sender.drain()
    sent = [(t.address.rsplit("/", 1)[1], n.reason, n.severity) for t, n in outbox.sent]
    assert sent == [("info", "Started", Severity.INFO), ("info", "RolledBack", Severity.ERROR),
                    ("error", "RolledBack", Severity.ERROR)]
    assert outbox.sent[0][0].channel == "releases" and outbox.sent[0][0].username == "canary"


async def test_the_secret_holds_the_address_token_and_proxy(session: aiohttp.ClientSession) -> None:
    cluster, outbox = FakeCluster(), Outbox()
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "teams-url", "namespace": "ops"},
                   "data": {k: base64.b64encode(v.encode()).decode() for k, v in
                            {"address": "http://127.0.0.1:1/teams", "token": "t0k"}.items()}})
    provider(cluster, "teams", namespace="ops", type="msteams", address="http://127.0.0.1:1/ignored",
             secretRef={"name": "teams-url"})
    sender = alerting(cluster, session, outbox)
    sender.alert(spec(AlertSpec("ops", ProviderRef("teams", "ops"), Severity.WARN)), rollback_notice())
    await sender.drain()
    [(target, _)] = outbox.sent
    assert (target.type, target.address, target.token) == (ProviderType.MSTEAMS, "http://127.0.0.1:1/teams", "t0k")


async def test_a_missing_provider_or_secret_is_an_event_naming_it(session: aiohttp.ClientSession) -> None:
    cluster, outbox = FakeCluster(), Outbox()
    provider(cluster, "no-secret", type="slack", secretRef={"name": "gone"})
    sender = alerting(cluster, session, outbox)
    sender.alert(spec(AlertSpec("a", ProviderRef("nope")), AlertSpec("b", ProviderRef("no-secret"))),
                 rollback_notice())
    await sender.drain()
    assert outbox.sent == []
    messages = [e["message"] for e in cluster.events(PROBLEM_REASON)]
    assert messages == ["alert 'a' not sent: AlertProvider shop/nope does not exist",
                        "alert 'b' not sent: AlertProvider shop/no-secret: its Secret shop/gone does not exist"]
    assert all(e["type"] == "Warning" for e in cluster.events(PROBLEM_REASON))


async def test_mute_alert_and_the_default_provider(session: aiohttp.ClientSession) -> None:
    cluster, outbox = FakeCluster(), Outbox()
    default = ChatTarget(ProviderType.SLACK, "http://127.0.0.1:1/default")
    sender = alerting(cluster, session, outbox, default)
    waiting = replace(rollback_notice(), reason="Waiting", warning=False, severity=None,
                      facts=replace(rollback_notice().facts, checks=(
                          replace(rollback_notice().facts.checks[0], name="approve", kind=CheckKind.WEBHOOK),)))
    sender.alert(spec(muted=True), waiting)
    sender.alert(spec(muted=False), waiting)
    await sender.drain()
    assert [(t.address, n.severity) for t, n in outbox.sent] == [("http://127.0.0.1:1/default", Severity.WARN)]

