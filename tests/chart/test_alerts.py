"""The chart's default alert provider values (``slack.*``, ``msteams.*``).

Each option is rendered by real ``helm template`` and the controller container's arguments and
environment are read back by the controller's own parser, with the ``secretKeyRef`` variables
resolved from a stand-in for the Secrets the kubelet would read; so a value that renders but that
the controller would read differently (a wrong variable name, a wrong key) fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from canary.cli.args import build_parser, settings_from_args
from canary.cli.errors import UsageError
from canary.config import AlertSettings
from e2e.harness.chart import HelmError, Rendered, render
from tests.chart.support import needs_helm

pytestmark = needs_helm

SLACK = "https://hooks.slack.com/services/T0/B0/secret"
TEAMS = "https://example.webhook.office.com/webhookb2/secret"
#: What the kubelet would find: Secret -> key -> value. A file-made Secret ends with a newline.
SECRETS = {"chat-hooks": {"address": SLACK + "\n", "teams": TEAMS}}


def _container(rendered: Rendered) -> dict[str, Any]:
    return dict(rendered.one("Deployment", "canary")["spec"]["template"]["spec"]["containers"][0])


def _resolved_env(container: dict[str, Any]) -> dict[str, str]:
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = SECRETS[ref["name"]][ref["key"]]
    return env


def _alerts_as_the_controller_reads_them(values: dict[str, Any]) -> AlertSettings:
    container = _container(render(values))
    ns = build_parser().parse_args(container["args"])
    return settings_from_args(ns, env=_resolved_env(container)).alerts


@pytest.mark.parametrize(("values", "expected"), [
    ({}, AlertSettings()),
    ({"slack": {"url": SLACK}}, AlertSettings(slack_url=SLACK)),
    ({"slack": {"url": SLACK, "channel": "#releases", "user": "rollouts: prod", "proxy": "http://proxy.infra:3128"}},
     AlertSettings(slack_url=SLACK, slack_channel="#releases", slack_user="rollouts: prod",
                   slack_proxy_url="http://proxy.infra:3128")),
    ({"slack": {"existingSecret": "chat-hooks", "channel": "releases"}},
     AlertSettings(slack_url=SLACK, slack_channel="releases")),
    ({"msteams": {"url": TEAMS, "proxy": "https://proxy.infra"}},
     AlertSettings(msteams_url=TEAMS, msteams_proxy_url="https://proxy.infra")),
    ({"msteams": {"existingSecret": "chat-hooks", "existingSecretKey": "teams"}}, AlertSettings(msteams_url=TEAMS)),
    ({"slack": {"existingSecret": "chat-hooks"}, "msteams": {"existingSecret": "chat-hooks", "existingSecretKey": "teams"}},
     AlertSettings(slack_url=SLACK, msteams_url=TEAMS)),
], ids=["defaults", "slack-url", "slack-every-field", "slack-secret", "msteams-url", "msteams-secret", "both-secrets"])
def test_each_option_reaches_the_controller_as_it_parses_it(values: dict[str, Any], expected: AlertSettings) -> None:
    assert _alerts_as_the_controller_reads_them(values) == expected


def test_an_address_from_a_secret_is_nowhere_in_the_pod_spec() -> None:
    container = _container(render({"slack": {"existingSecret": "chat-hooks"},
                                   "msteams": {"existingSecret": "chat-hooks", "existingSecretKey": "teams"}}))
    assert not [a for a in container["args"] if a.startswith(("--slack-url", "--msteams-url"))]
    assert container["env"] == [
        {"name": "CANARY_SLACK_URL", "valueFrom": {"secretKeyRef": {"name": "chat-hooks", "key": "address"}}},
        {"name": "CANARY_MSTEAMS_URL", "valueFrom": {"secretKeyRef": {"name": "chat-hooks", "key": "teams"}}},
    ]


def test_without_alert_values_the_controller_gets_no_alert_flag_or_variable() -> None:
    container = _container(render())
    assert "env" not in container
    assert not [a for a in container["args"] if a.startswith(("--slack", "--msteams"))]


# --- refused ------------------------------------------------------------------------------------

#: value path -> the controller's flag for it
URL_FIELDS = {("slack", "url"): "--slack-url", ("slack", "proxy"): "--slack-proxy-url",
              ("msteams", "url"): "--msteams-url", ("msteams", "proxy"): "--msteams-proxy-url"}


@pytest.mark.parametrize("bad", ["hooks.slack.com/services/T0/B0/x", "ftp://hooks.example/x", "HTTPS//x"])
@pytest.mark.parametrize("field", URL_FIELDS, ids=["/".join(f) for f in URL_FIELDS])
def test_an_address_the_controller_refuses_is_refused_by_helm_naming_the_value(field: tuple[str, str],
                                                                              bad: str) -> None:
    flag = URL_FIELDS[field]
    with pytest.raises(UsageError, match=flag):
        settings_from_args(build_parser().parse_args(["run", f"{flag}={bad}"]), env={})
    system, key = field
    with pytest.raises(HelmError) as refused:
        render({system: {key: bad}})
    assert "values don't meet the specifications of the schema" in refused.value.output
    assert f"/{system}/{key}" in refused.value.output


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    # The flag would silently win over the Secret's variable.
    "slack url and secret": ({"slack": {"url": SLACK, "existingSecret": "chat-hooks"}}, "/slack/url"),
    "msteams url and secret": ({"msteams": {"url": TEAMS, "existingSecret": "chat-hooks"}}, "/msteams/url"),
    "unknown slack key": ({"slack": {"webhook": SLACK}}, "webhook"),
    "unknown msteams key": ({"msteams": {"channel": "ops"}}, "channel"),
    "secret name not a Kubernetes name": ({"slack": {"existingSecret": "Chat_Hooks"}}, "/slack/existingSecret"),
    "empty secret key": ({"msteams": {"existingSecret": "chat-hooks", "existingSecretKey": ""}},
                         "/msteams/existingSecretKey"),
    "secret key with a slash": ({"slack": {"existingSecret": "chat-hooks", "existingSecretKey": "a/b"}},
                                "/slack/existingSecretKey"),
}


@pytest.mark.parametrize(("values", "field"), REFUSED.values(), ids=REFUSED.keys())
def test_helm_refuses_alert_values_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(HelmError) as refused:
        render(values)
    assert "values don't meet the specifications of the schema" in refused.value.output
    assert field in refused.value.output
