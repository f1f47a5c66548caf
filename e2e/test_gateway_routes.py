"""Scenario: a Flagger Gateway API Canary (gatewayRefs to a Gateway, hosts, timeouts, header
filters) produces an HTTPRoute with exactly those, keeps them through a release, and the release
completes.

The route attaches to a Gateway, so it routes north-south traffic; the simulated mesh routes only
east-west (routes whose parent is a Service) and leaves this one alone. The scenario therefore has
no metric checks and asserts on what the API server stores and on the release's phases, not on
traffic shares.
"""

from __future__ import annotations

import copy
from typing import Any

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube
from e2e.harness.release import GATEWAY_GROUP, ReleaseWatcher, ship, template_version
from e2e.harness.route_watch import ChangeRecorder, custom

NAME = "podinfo"
PARENTS = [
    {"group": GATEWAY_GROUP, "kind": "Gateway", "name": "public", "namespace": "gateways", "sectionName": "https"},
    {"group": GATEWAY_GROUP, "kind": "Gateway", "name": "internal"},
]
HOSTS = ["podinfo.example.com", "www.podinfo.example.com"]
SERVICE_OPTIONS = {
    "gatewayRefs": [
        {"name": "public", "namespace": "gateways", "sectionName": "https"},
        {"name": "internal"},
    ],
    "hosts": HOSTS,
    "timeout": "1m30s",
    "backendTimeout": "2.5s",
    "headers": {
        "request": {"set": {"x-release": "canary"}, "remove": ["x-debug"]},
        "response": {"add": {"x-served-by": "podinfo"}},
    },
}
FILTERS = [
    {"type": "RequestHeaderModifier",
     "requestHeaderModifier": {"set": [{"name": "x-release", "value": "canary"}], "remove": ["x-debug"]}},
    {"type": "ResponseHeaderModifier",
     "responseHeaderModifier": {"add": [{"name": "x-served-by", "value": "podinfo"}]}},
]
TIMEOUTS = {"request": "1m30s", "backendRequest": "2s500ms"}


def _canary(namespace: str) -> dict[str, Any]:
    body = app.canary(NAME, namespace, provider="gatewayapi", step_weight=50, max_weight=50, metrics=[])
    body["spec"]["service"].update(copy.deepcopy(SERVICE_OPTIONS))
    return body


def _route(kube: Kube) -> dict[str, Any]:
    route = kube.custom_object(GATEWAY_GROUP, "v1", "httproutes", NAME)
    assert route is not None, "no HTTPRoute"
    return route


def _split(route: dict[str, Any]) -> dict[str, int]:
    return {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][-1]["backendRefs"]}


def _assert_carries_the_options(route: dict[str, Any]) -> None:
    spec = route["spec"]
    assert spec["parentRefs"] == PARENTS
    assert spec["hostnames"] == HOSTS
    [rule] = spec["rules"]
    assert rule["filters"] == FILTERS
    assert rule["timeouts"] == TIMEOUTS
    # The API server's defaults: the one rule matches every request.
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


def test_gateway_refs_hosts_and_filters_reach_the_route_and_a_release_completes(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    env.use_flavour("gatewayapi")
    start_controller()
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("1"), replicas=1))
    kube.create(_canary(kube.namespace))
    kube.wait_for_phase(NAME, "Initialized", timeout=90)

    initial = _route(kube)
    _assert_carries_the_options(initial)
    assert _split(initial) == {f"{NAME}-primary": 100, f"{NAME}-canary": 0}

    # Every state the route goes through, from the API server's watch: none may lose an option.
    routes = [custom(env.api, "HTTPRoute", GATEWAY_GROUP, "v1", "httproutes")]
    with ChangeRecorder(env.api, kube.namespace, routes) as recorder, ReleaseWatcher(kube, NAME) as watcher:
        ship(kube, NAME, "2")
        final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=120)

    assert final["phase"] == "Succeeded", final
    assert recorder.gaps == 0 and recorder.errors == []
    states = [c.body for c in recorder.of("HTTPRoute", NAME)]
    for state in states:
        _assert_carries_the_options(state)
    splits = [_split(state)[f"{NAME}-canary"] for state in states]
    assert [w for i, w in enumerate(splits) if i == 0 or splits[i - 1] != w] == [0, 50, 0], splits
    assert template_version(kube.deployment(f"{NAME}-primary")) == "2"
    assert 50 in watcher.weights()
    assert watcher.phases()[-1] == "Succeeded"
    # Our own writes read back as ours: nothing was "restored" along the way.
    assert [e for e in kube.events(NAME) if e.get("reason") == "RouteRestored"] == []
