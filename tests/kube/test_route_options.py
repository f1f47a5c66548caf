"""Route options through the whole controller on the in-memory cluster: refused with an SMI
provider before anything is written, written into the HTTPRoute with the Gateway API."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from canary.domain.status import ConditionType, Phase
from canary.domain.weights import ALL_PRIMARY, Weights
from tests.kube.harness import GATEWAY, LINKERD_SMI, NS, canary_body, cluster_with_app, release

GATEWAY_CLUSTER = {**LINKERD_SMI, GATEWAY: ["v1", "v1beta1"]}
NORTH_SOUTH = {
    "port": 9898, "targetPort": "http",
    "gatewayRefs": [{"name": "public", "namespace": "gateways"}],
    "hosts": ["app.example.com"],
    "timeout": "30s",
    "headers": {"response": {"set": {"x-release": "canary"}}},
}


@pytest.mark.parametrize(
    ("service", "analysis", "field"),
    [
        pytest.param({"port": 9898, "gatewayRefs": [{"name": "public"}]}, {}, "spec.service.gatewayRefs", id="refs"),
        pytest.param({"port": 9898, "hosts": ["app.example.com"]}, {}, "spec.service.hosts", id="hosts"),
        pytest.param({"port": 9898}, {"sessionAffinity": {"cookieName": "c"}}, "spec.analysis.sessionAffinity",
                     id="session-affinity"),
    ],
)
async def test_an_smi_canary_with_route_options_stalls_naming_the_field(
        service: dict[str, Any], analysis: dict[str, Any], field: str) -> None:
    cluster = cluster_with_app(GATEWAY_CLUSTER)
    async with release(cluster, canary_body(provider="linkerd", service=service, analysis=analysis)) as r:
        for _ in range(3):
            await r.reconcile()
            r.advance()
        stalled, reason, message = r.condition(ConditionType.STALLED)
    assert (stalled, reason) == (True, "InvalidSpec")
    assert message.startswith(f"{field} is applied only with spec.provider: gatewayapi")
    assert cluster.route_writes() == []


async def test_a_north_south_release_with_session_affinity_writes_every_option() -> None:
    cluster = cluster_with_app(GATEWAY_CLUSTER)
    body = canary_body(provider="gatewayapi", service=NORTH_SOUTH,
                       analysis={"sessionAffinity": {"cookieName": "canary-session", "maxAge": 600}})
    async with release(cluster, body) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.canary_weight == 20)
        revision = r.status.last_applied_spec
        mid_run = cluster.get("HTTPRoute", NS, "podinfo")
        await r.run_until_phase(Phase.SUCCEEDED)
        final = cluster.get("HTTPRoute", NS, "podinfo")

    assert mid_run is not None and final is not None
    for route in (mid_run, final):
        spec = route["spec"]
        assert spec["parentRefs"] == [{"group": GATEWAY, "kind": "Gateway", "name": "public", "namespace": "gateways"}]
        assert spec["hostnames"] == ["app.example.com"]
        for rule in spec["rules"]:
            assert rule["timeouts"] == {"request": "30s"}
            assert {"type": "ResponseHeaderModifier",
                    "responseHeaderModifier": {"set": [{"name": "x-release", "value": "canary"}]}} in rule["filters"]
    cookie_rule, split_rule = mid_run["spec"]["rules"]
    assert revision in cookie_rule["matches"][0]["headers"][0]["value"]
    assert split_rule["backendRefs"][1]["filters"][0]["responseHeaderModifier"]["add"] == [
        {"name": "Set-Cookie", "value": f"canary-session={revision}; Max-Age=600; Path=/"}]
    # Once promoted, the stickiness is gone: one rule, everything on the primary.
    assert [len(final["spec"]["rules"]), final["spec"]["rules"][0]["backendRefs"][0]["weight"]] == [1, 100]
    assert cluster.route_writes()[1:] == [Weights.canary_at(w) for w in (10, 20, 30, 40, 50)] + [ALL_PRIMARY]
    # Our own writes read back as ours: no route was ever "restored".
    assert cluster.events("RouteRestored") == []


@pytest.mark.parametrize(
    ("analysis", "experiment_rules", "mirror"),
    [
        pytest.param({"match": [{"headers": {"x-canary": {"exact": "insider"}}}]}, 1, False, id="ab"),
        pytest.param({"mirror": True, "mirrorWeight": 25}, 0, True, id="mirror"),
    ],
)
async def test_a_blue_green_experiment_routes_it_while_judged_and_drops_it_after(
        analysis: dict[str, Any], experiment_rules: int, mirror: bool) -> None:
    cluster = cluster_with_app(GATEWAY_CLUSTER)
    body = canary_body(provider="gatewayapi", analysis={
        "stepWeight": None, "maxWeight": None, "iterations": 3, **analysis})
    body["spec"]["analysis"] = {k: v for k, v in body["spec"]["analysis"].items() if v is not None}
    async with release(cluster, body) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.phase is Phase.PROGRESSING and rel.status.iterations >= 1)
        during = cluster.get("HTTPRoute", NS, "podinfo")
        await r.run_until_phase(Phase.SUCCEEDED)
        after = cluster.get("HTTPRoute", NS, "podinfo")

    assert during is not None and after is not None
    rules = during["spec"]["rules"]
    assert len(rules) == experiment_rules + 1
    for rule in rules[:-1]:
        assert rule["backendRefs"] == [{"name": "podinfo-canary", "port": 9898}]
    split = rules[-1]
    assert [b["weight"] for b in split["backendRefs"]] == [100, 0]
    mirrors = [f for f in split.get("filters", []) if f["type"] == "RequestMirror"]
    assert mirrors == ([{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898}, "percent": 25}}]
        if mirror else [])
    assert after["spec"]["rules"] == [{"backendRefs": [{"name": "podinfo-primary", "port": 9898, "weight": 100},
                                                       {"name": "podinfo-canary", "port": 9898, "weight": 0}]}]
    # Written once per shape (the experiment read back as such, not rewritten every pass), and
    # never reported as changed from outside.
    written = [c.body["spec"]["rules"] for c in cluster.calls
               if c.method in ("create_namespaced_custom_object", "replace_namespaced_custom_object")
               and c.body.get("kind") == "HTTPRoute"]
    assert [len(rules) for rules in written] == [1, experiment_rules + 1, 1]
    assert cluster.events("RouteRestored") == []


async def test_a_route_the_api_server_stores_without_a_field_fails_the_pass_instead_of_rewriting_forever(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = cluster_with_app(GATEWAY_CLUSTER)
    # A Gateway API CRD older than v1.3 prunes RequestMirror's percent as it stores the route.
    store = cluster._replace

    def prune_percent(kind: str, namespace: str, name: str, body: Any) -> dict[str, Any]:
        body = copy.deepcopy(dict(body))
        for rule in body.get("spec", {}).get("rules", []) if kind == "HTTPRoute" else []:
            for flt in rule.get("filters", []):
                flt.get("requestMirror", {}).pop("percent", None)
        return store(kind, namespace, name, body)

    monkeypatch.setattr(cluster, "_replace", prune_percent)
    body = canary_body(provider="gatewayapi", analysis={"iterations": 3, "mirror": True, "mirrorWeight": 25})
    for key in ("stepWeight", "maxWeight"):
        del body["spec"]["analysis"][key]
    async with release(cluster, body) as r:
        await r.initialize()
        r.push("6.0.1")
        # The controller's own loop (run_pass), which turns a failed pass into back-off and a report.
        delays = []
        for _ in range(6):
            delay = await r.reconciler.run_pass(now=r.now)
            cluster.tick()
            assert delay is not None
            delays.append(delay)
            r.advance(delay)
        stalled, reason, message = r.condition(ConditionType.STALLED)
    assert (stalled, reason) == (True, "ReconcileError")
    assert "did not store the HTTPRoute test/podinfo as written (routing 100/0+experiment)" in message
    assert "spec.analysis.mirrorWeight needs Gateway API v1.3 or later" in message
    # Each attempt waits longer than the last: no write loop.
    failing = delays[-3:]
    assert failing == sorted(failing) and failing[0] < failing[-1]
