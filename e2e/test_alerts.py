"""Chat alerts end to end: AlertProviders pointing at loopback receivers, a healthy and a faulty
release, and what each receiver was sent; then muteAlert and a missing provider.

Four providers hear one Canary at different severities: Slack (info: everything that alerts),
Discord (warn), Teams (error, its address in a Secret) and a generic receiver that answers 500,
which the controller retries and then drops, counting the drop in its /metrics, while both
releases complete.
"""

from __future__ import annotations

import base64
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.chat import ChatReceiver, serve_chat
from e2e.harness.environment import Environment
from e2e.harness.gate import Gate, serve_gate
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import ship

RPS = 40
GROUP, VERSION = "canary.dev", "v1alpha1"


@pytest.fixture
def chat() -> Iterator[ChatReceiver]:
    with serve_chat() as receiver:
        yield receiver


@pytest.fixture
def gate() -> Iterator[Gate]:
    with serve_gate() as state:
        yield state


def _provider(kube: Kube, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AlertProvider",
            "metadata": {"name": name, "namespace": kube.namespace}, "spec": spec}
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, "alertproviders", body)


def _secret(kube: Kube, name: str, data: dict[str, str]) -> None:
    kube.core.create_namespaced_secret(kube.namespace, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})


def _dropped(port: int, system: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(rf'^canary_notifications_dropped_total{{system="{system}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _install(kube: Kube, alerts: list[dict[str, Any]]) -> None:
    kube.create(app.deployment("podinfo", kube.namespace, annotations=app.behaviour("1"), replicas=2))
    canary = app.canary("podinfo", kube.namespace, threshold=2)
    canary["spec"]["analysis"]["alerts"] = alerts
    kube.create(canary)
    kube.wait_for_phase("podinfo", "Initialized", timeout=90)


def _titles(bodies: list[Any], title: Any) -> list[str]:
    return [str(title(b)) for b in bodies]


def test_alerts_reach_each_chat_system_at_its_severity(env: Environment, kube: Kube,
                                                       start_controller: StartController,
                                                       chat: ChatReceiver) -> None:
    env.use_flavour("linkerd")
    controller = start_controller()
    chat.statuses["/generic"] = 500
    _provider(kube, "slack", {"type": "slack", "channel": "releases", "address": chat.url("/slack")})
    _provider(kube, "discord", {"type": "discord", "address": chat.url("/discord")})
    _secret(kube, "teams-webhook", {"address": chat.url("/teams")})
    _provider(kube, "teams", {"type": "msteams", "secretRef": {"name": "teams-webhook"}})
    _provider(kube, "pager", {"type": "generic", "address": chat.url("/generic")})
    _install(kube, [
        {"name": "everything", "severity": "info", "providerRef": {"name": "slack"}},
        {"name": "warnings", "severity": "warn", "providerRef": {"name": "discord"}},
        {"name": "failures", "severity": "error", "providerRef": {"name": "teams", "namespace": kube.namespace}},
        {"name": "pager", "severity": "info", "providerRef": {"name": "pager"}},
    ])
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)

    ship(kube, "podinfo", "2")
    assert kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=150)["phase"] == "Succeeded"
    slack_title = lambda b: b["attachments"][0]["blocks"][0]["text"]["text"]  # noqa: E731
    wait_for(lambda: _titles(chat.bodies("/slack"), slack_title),
             lambda titles: f"{kube.namespace}/podinfo: Succeeded" in titles, timeout=60,
             what="Slack to hear the promotion")

    ship(kube, "podinfo", "3-broken", error_rate=0.5)
    assert kube.wait_for_phase("podinfo", "Failed", "Succeeded", timeout=120)["phase"] == "Failed"
    teams = wait_for(lambda: chat.bodies("/teams"), lambda b: len(b) >= 1, timeout=60,
                     what="Teams to hear the rollback")
    discord = wait_for(lambda: chat.bodies("/discord"), lambda b: len(b) >= 1, timeout=60,
                       what="Discord to hear the rollback")
    slack = wait_for(lambda: _titles(chat.bodies("/slack"), slack_title),
                     lambda titles: f"{kube.namespace}/podinfo: RolledBack" in titles, timeout=60,
                     what="Slack to hear the rollback")

    # Severity routing: info hears the whole release, warn and error only the rollback.
    canary = f"{kube.namespace}/podinfo"
    assert [t for t in slack if t.endswith(("Started", "Succeeded", "RolledBack"))] == [
        f"{canary}: Started", f"{canary}: Succeeded", f"{canary}: Started", f"{canary}: RolledBack"], slack
    [card] = teams
    body = card["attachments"][0]["content"]["body"]
    assert body[0]["text"] == f"{canary}: RolledBack" and body[0]["color"] == "Attention"
    [embed] = [b["embeds"][0] for b in discord]
    assert embed["title"] == f"{canary}: RolledBack"

    # The rollback names the failing check with its value and bounds, and the commands.
    texts = [b["text"] for b in body if b["type"] == "TextBlock"]
    failing = [t for t in texts if t.startswith("request\\-success\\-rate") or t.startswith("request-success-rate")]
    assert failing and re.search(r"outside \\\[99, \+inf\\\]", failing[0]), texts
    value = float(re.match(r"request-success-rate: (\S+) ", failing[0].replace("\\", "")).group(1))  # type: ignore[union-attr]
    assert value < 99, failing
    assert f"kubectl annotate canary podinfo -n {kube.namespace} --overwrite canary.dev/rollback='rolled back from " \
           "an alert'" in texts
    assert f"canary rollback podinfo -n {kube.namespace}" in texts
    assert f"canary promote podinfo -n {kube.namespace}" in texts
    assert f"canary pause podinfo -n {kube.namespace}" in texts
    assert "request-success-rate" in str(embed["fields"])

    # The receiver answering 500: every notice tried 4 times, then dropped and counted.
    dropped = wait_for(lambda: _dropped(controller.metrics_port, "generic"), lambda n: n >= 1, timeout=60,
                       what="the generic provider's drops to be counted")
    assert len(chat.bodies("/generic")) >= 4 * dropped


def test_mute_alert_silences_a_held_gate_and_a_missing_provider_is_named(
        env: Environment, kube: Kube, start_controller: StartController, chat: ChatReceiver, gate: Gate) -> None:
    env.use_flavour("linkerd")
    start_controller()
    # Both providers post to one address, so the controller delivers to it in order: once the
    # info provider's Succeeded has arrived, a warn alert for the earlier wait would have too.
    _provider(kube, "warnings", {"type": "discord", "address": chat.url("/shared")})
    _provider(kube, "everything", {"type": "generic", "address": chat.url("/shared")})
    kube.create(app.deployment("podinfo", kube.namespace, annotations=app.behaviour("1"), replicas=2))
    canary = app.canary("podinfo", kube.namespace, step_weight=50, max_weight=50, webhooks=[
        {"name": "release-approval", "type": "confirm-promotion", "url": gate.url, "timeout": "2s",
         "muteAlert": True}])
    canary["spec"]["analysis"]["alerts"] = [
        {"name": "warnings", "severity": "warn", "providerRef": {"name": "warnings"}},
        {"name": "everything", "severity": "info", "providerRef": {"name": "everything"}},
        {"name": "ghost", "severity": "info", "providerRef": {"name": "ghost"}},
    ]
    kube.create(canary)
    kube.wait_for_phase("podinfo", "Initialized", timeout=90)
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)

    ship(kube, "podinfo", "2")
    kube.wait_for_phase("podinfo", "WaitingPromotion", timeout=90)
    gate.approved.set()
    assert kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=90)["phase"] == "Succeeded"

    shared = wait_for(lambda: chat.bodies("/shared"),
                      lambda bodies: any(b.get("reason") == "Succeeded" for b in bodies), timeout=60,
                      what="the info provider to hear the promotion")
    generic = [b["reason"] for b in shared if "reason" in b]
    assert "WaitingPromotion" not in generic and generic[-1] == "Succeeded", generic
    assert [b for b in shared if "embeds" in b] == [], "the muted gate's wait must not reach the warn provider"

    problems = wait_for(lambda: [e for e in kube.events("podinfo") if e["reason"] == "AlertProviderInvalid"],
                        lambda found: len(found) >= 1, timeout=60, what="the missing provider to be reported")
    assert problems[0]["type"] == "Warning"
    assert problems[0]["message"] == f"alert 'ghost' not sent: AlertProvider {kube.namespace}/ghost does not exist"
