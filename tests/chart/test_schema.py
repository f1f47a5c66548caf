"""values.schema.json refuses what the controller and the metrics server refuse at start.

The enums and ranges are compared with the code's own tables (argparse choices, bounds), so a
new mesh or log level cannot be added to one side only; the refusals go through real
``helm template``, which must exit non-zero naming the field; and the arguments the chart renders
for the defaults are parsed by the controller's own argument parser.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from canary.cli.args import DEFAULT_PROVIDERS, LOG_LEVELS, build_parser, server_settings_from_args, settings_from_args
from canary.config import Mesh
from canary.domain import bounds
from canary.domain.spec import ProviderType
from canary.metricsserver.meshes import SERVED_MESHES
from e2e.harness.chart import CHART, HelmError, render
from tests.chart.support import EVERYTHING_ON, METRICS_SERVER_ON, needs_helm

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def _at(path: str) -> dict[str, Any]:
    node = SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return node


def test_enums_are_the_codes_choices() -> None:
    assert _at("mesh")["enum"] == [m.value for m in Mesh]
    assert _at("defaultProvider")["enum"] == list(DEFAULT_PROVIDERS)
    assert _at("metricsSource")["enum"] == [p.value for p in ProviderType]
    assert _at("logLevel")["enum"] == list(LOG_LEVELS)
    assert _at("metricsServer.logLevel")["enum"] == list(LOG_LEVELS)
    # Empty means "the controller's mesh", which must then be one the metrics server serves.
    assert _at("metricsServer.mesh")["enum"] == ["", *(m.value for m in SERVED_MESHES)]
    [served_rule] = [rule for rule in SCHEMA["allOf"] if "mesh" in rule["then"]["properties"]]
    assert served_rule["then"]["properties"]["mesh"]["enum"] == [m.value for m in SERVED_MESHES]


@pytest.mark.parametrize("path", ["metricsPort", "metricsServer.securePort"])
def test_port_ranges_are_the_codes_bounds(path: str) -> None:
    node = _at(path)
    assert (node["minimum"], node["maximum"]) == (bounds.LISTEN_PORT.floor, bounds.LISTEN_PORT.ceiling)


def test_values_yaml_is_valid_against_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(DEFAULTS, SCHEMA, cls=jsonschema.Draft7Validator)


def test_every_top_level_value_has_a_schema() -> None:
    # additionalProperties: false then refuses a typo (`meshh: istio`) instead of ignoring it.
    assert SCHEMA["additionalProperties"] is False
    assert set(DEFAULTS) <= set(SCHEMA["properties"])


# --- through helm ------------------------------------------------------------------------------

REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "unknown mesh": ({"mesh": "nginx"}, "/mesh"),
    "unknown default provider": ({"defaultProvider": "istio"}, "/defaultProvider"),
    "unknown metrics source": ({"metricsSource": "datadog"}, "/metricsSource"),
    "unknown log level": ({"logLevel": "verbose"}, "/logLevel"),
    "upper-case log level": ({"logLevel": "INFO"}, "/logLevel"),
    "port zero": ({"metricsPort": 0}, "/metricsPort"),
    "port too high": ({"metricsPort": 65536}, "/metricsPort"),
    "port as text": ({"metricsPort": "8080"}, "/metricsPort"),
    "address without scheme": ({"prometheusAddress": "prometheus:9090"}, "/prometheusAddress"),
    "lease name with capitals": ({"leaderElection": {"enabled": True, "leaseName": "Canary"}}, "/leaderElection/leaseName"),
    "namespace list in one item": ({"watchNamespaces": ["shop,payments"]}, "/watchNamespaces/0"),
    "no replica": ({"replicaCount": 0}, "/replicaCount"),
    "replicas without election": ({"replicaCount": 2, "leaderElection": {"enabled": False}}, "/replicaCount"),
    "typo at the top": ({"meshh": "istio"}, "meshh"),
    "no shard bucket": ({"sharding": {"enabled": True, "buckets": 0}}, "/sharding/buckets"),
    "too many shard buckets": ({"sharding": {"enabled": True, "buckets": 257}}, "/sharding/buckets"),
    "alert duration in words": ({"prometheusRule": {"enabled": True, "alerts": {"leaderLost": {"for": "a minute"}}}},
                                "/prometheusRule/alerts/leaderLost/for"),
    "scrape interval without unit": ({"serviceMonitor": {"enabled": True, "interval": "30"}}, "/serviceMonitor/interval"),
    "metrics server mesh it does not serve": ({**METRICS_SERVER_ON, "metricsServer": {
        **METRICS_SERVER_ON["metricsServer"], "mesh": "traefik"}}, "/metricsServer/mesh"),
    "metrics server taking an unserved mesh": ({**METRICS_SERVER_ON, "mesh": "traefik"}, "/mesh"),
    "metrics server log level": ({"metricsServer": {"logLevel": "trace"}}, "/metricsServer/logLevel"),
    "pull secret without name": ({"imagePullSecrets": [{}]}, "/imagePullSecrets/0"),
    "pull policy": ({"image": {"repository": "r", "pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "name override not a DNS label": ({"nameOverride": "Canary_Ctl"}, "/nameOverride"),
}


@needs_helm
@pytest.mark.parametrize(("values", "field"), REFUSED.values(), ids=REFUSED.keys())
def test_helm_refuses_what_the_controller_would_refuse(values: dict[str, Any], field: str) -> None:
    with pytest.raises(HelmError) as refused:
        render(values)
    assert "values don't meet the specifications of the schema" in refused.value.output
    assert field in refused.value.output


@needs_helm
@pytest.mark.parametrize("values", [
    {"mesh": "traefik", "defaultProvider": "gatewayapi"},
    # A metrics server with a mesh of its own may serve beside a traefik controller.
    {**METRICS_SERVER_ON, "mesh": "traefik", "metricsServer": {**METRICS_SERVER_ON["metricsServer"], "mesh": "istio"}},
    {"replicaCount": 1, "leaderElection": {"enabled": False}},
    {"prometheusAddress": "https://thanos.monitoring.svc:10902", "logLevel": "debug", "metricsPort": 9102},
    # Sharded replicas need no leader: each acts on the buckets it holds.
    {"replicaCount": 3, "leaderElection": {"enabled": False}, "sharding": {"enabled": True, "buckets": 256}},
], ids=["traefik", "metrics-server-own-mesh", "single-replica", "https-prometheus", "sharded-without-election"])
def test_helm_accepts_what_the_controller_accepts(values: dict[str, Any]) -> None:
    assert render(values).one("Deployment", "canary")


@needs_helm
def test_the_rendered_arguments_parse_as_the_controller_and_metrics_server_parse_them() -> None:
    rendered = render({**EVERYTHING_ON, "watchNamespaces": ["shop", "payments"], "mesh": "istio"})
    parser = build_parser()
    controller = rendered.one("Deployment", "canary")["spec"]["template"]["spec"]["containers"][0]
    settings = settings_from_args(parser.parse_args(controller["args"]), env={})
    assert settings.metrics.mesh is Mesh.ISTIO
    assert settings.namespaces == ("shop", "payments")
    assert settings.leader_election.lease_namespace == "canary-system"
    assert settings.metrics_port == controller["ports"][0]["containerPort"]
    server = rendered.one("Deployment", "canary-metrics-server")["spec"]["template"]["spec"]["containers"][0]
    server_settings = server_settings_from_args(parser.parse_args(server["args"]), env={})
    assert server_settings.mesh is Mesh.ISTIO
    assert server_settings.secure_port == server["ports"][0]["containerPort"]
