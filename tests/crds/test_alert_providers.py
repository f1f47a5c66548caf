"""The AlertProvider CRD and parse_alert_provider_spec agree: Flagger's manifests pass both,
and what one refuses the other refuses, naming the same field."""

from __future__ import annotations

from typing import Any

import pytest

from canary.domain.alerts import ProviderType, parse_alert_provider_spec
from canary.errors import SpecError
from tests.crds.schema_validator import Invalid, load_crds


def provider(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "canary.dev/v1alpha1", "kind": "AlertProvider",
            "metadata": {"name": "on-call", "namespace": "test"}, "spec": spec}


@pytest.mark.parametrize("spec", [
    {"type": "slack", "channel": "on-call", "username": "flagger", "address": "https://hooks.slack.example/T/B/X"},
    {"type": "msteams", "secretRef": {"name": "teams-url"}},
    {"type": "discord", "address": "https://discord.example/api/webhooks/1/x", "proxy": "http://proxy:3128"},
    {"type": "rocket", "channel": "ops", "address": "https://rocket.example/hooks/x"},
    {"type": "gchat", "address": "https://chat.googleapis.example/v1/spaces/x/messages?key=k"},
    {"type": "generic", "address": "http://127.0.0.1:9000/alerts"},
], ids=lambda s: str(s["type"]))
def test_flaggers_shapes_are_admitted_and_parsed(spec: dict[str, Any]) -> None:
    admitted = load_crds()["AlertProvider"].admit(provider(**spec))
    assert admitted.pruned == []
    assert parse_alert_provider_spec(spec).type is ProviderType(spec["type"])


@pytest.mark.parametrize(("spec", "field"), [
    ({"type": "teams", "address": "https://x.example/"}, "spec.type"),
    ({"type": "slack"}, "spec"),
    ({"type": "slack", "address": "hooks.slack.example"}, "spec.address"),
    ({"type": "slack", "address": "https://x.example/", "proxy": "proxy:3128"}, "spec.proxy"),
    ({"type": "slack", "secretRef": {"name": ""}}, "spec.secretRef.name"),
], ids=["type", "no-address", "address-not-url", "proxy-not-url", "secret-name-empty"])
def test_both_refuse_the_same_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as refused:
        load_crds()["AlertProvider"].admit(provider(**spec))
    assert {e.path for e in refused.value.errors} == {field}, refused.value
    with pytest.raises(SpecError) as parsed:
        parse_alert_provider_spec(spec)
    assert parsed.value.field.startswith(field)


def test_an_unknown_field_is_pruned_by_the_schema_and_refused_by_the_parser() -> None:
    spec = {"type": "slack", "address": "https://x.example/", "webhook": "y"}
    assert load_crds()["AlertProvider"].admit(provider(**spec)).pruned == ["spec.webhook"]
    with pytest.raises(SpecError, match="spec.webhook"):
        parse_alert_provider_spec(spec)
