"""The simulated data plane honours the routing rules it reads from the API server.

No controller here: the test writes what a controller would (HTTPRoutes for A/B testing, on a
Service (GAMMA) and on a Gateway with a hostname, with a mirror; a TrafficSplit with an
HTTPRouteGroup), drives two kinds of traffic at once through the mesh and reads where each went.
It is the data plane's own check that the CRDs' defaults and pruning leave it everything it
routes by, so a Canary scenario that relies on it measures the controller, not the simulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.mesh.client import MeshClient

GATEWAY_API = ("gateway.networking.k8s.io", "v1", "httproutes")
RPS = 30
#: Answered requests per stream before the shares are read.
PER_STREAM = 60


def service(name: str, selector: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": selector}, "ports": [{"port": app.PORT, "targetPort": "http", "name": "http"}]},
    }


def backend(name: str, weight: int) -> dict[str, Any]:
    return {"name": name, "port": app.PORT, "weight": weight}


def ab_rules(match: Mapping[str, Any], *, mirror: bool = False) -> list[dict[str, Any]]:
    default: dict[str, Any] = {"backendRefs": [backend("podinfo-primary", 100), backend("podinfo-canary", 0)]}
    if mirror:
        default["filters"] = [
            {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "podinfo-canary", "port": app.PORT}}}
        ]
    return [{"matches": [match], "backendRefs": [backend("podinfo-primary", 0), backend("podinfo-canary", 100)]}, default]


@pytest.fixture
def podinfo(env: Environment, kube: Kube) -> MeshClient:
    """Primary and canary Deployments with one ready Pod each, and the three Services."""
    for name in ("podinfo-primary", "podinfo"):
        kube.create(app.deployment(name, kube.namespace, annotations=app.behaviour("1"), replicas=1))
    for name, selector in (("podinfo", "podinfo-primary"), ("podinfo-primary", "podinfo-primary"), ("podinfo-canary", "podinfo")):
        kube.core.create_namespaced_service(kube.namespace, service(name, selector))
    client = env.mesh.client
    client.wait_for_pods(kube.namespace, "podinfo-primary", 1, timeout=60)
    client.wait_for_pods(kube.namespace, "podinfo", 1, timeout=60)
    return client


def drive(client: MeshClient, read: Any, streams: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Run the streams until each has PER_STREAM answers in ``read()``'s per-stream counts, stop
    them, and return the counts once nothing is in flight."""
    for name, settings in streams.items():
        client.set_load(rps=RPS, name=name, **settings)
    try:
        wait_for(
            lambda: {n: sum(read().stream(n).values()) for n in streams},
            lambda seen: all(v >= PER_STREAM for v in seen.values()),
            timeout=120,
            what=f"{PER_STREAM} answers on each of {', '.join(streams)}",
        )
    finally:
        for name, settings in streams.items():
            client.set_load(settings["namespace"], settings["service"], 0, name=name, host=settings.get("host"))
    wait_for(lambda: [s for s in client.loads() if s.name in streams], lambda left: not left, timeout=30, what="the streams to stop")
    return {n: dict(read().stream(n)) for n in streams}


def test_ab_by_header_on_a_service_and_by_cookie_on_a_gateway_host_with_a_mirror(
    env: Environment, kube: Kube, podinfo: MeshClient
) -> None:
    env.use_flavour("gatewayapi")
    ns, client = kube.namespace, podinfo
    host = f"app.{ns}.example"
    insider = {"headers": [{"name": "x-canary", "value": "insider"}]}
    cookie = {"headers": [{"name": "cookie", "type": "RegularExpression", "value": ".*canary=always.*"}]}
    routes = [
        {
            "metadata": {"name": "podinfo"},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "podinfo", "port": app.PORT}],
                "rules": ab_rules(insider),
            },
        },
        {
            "metadata": {"name": "podinfo-edge"},
            "spec": {"parentRefs": [{"name": "edge"}], "hostnames": [host], "rules": ab_rules(cookie, mirror=True)},
        },
    ]
    for body in routes:
        kube.custom.create_namespaced_custom_object(
            *GATEWAY_API[:2], ns, GATEWAY_API[2], {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", **body}
        )
    client.wait_for_route(ns, "podinfo", {"podinfo-primary": 0, "podinfo-canary": 100}, 30, source_kind="HTTPRoute")
    wait_for(lambda: client.host_route(host), lambda r: r is not None, timeout=30, what=f"the Gateway route of {host}")

    mesh = drive(
        client,
        lambda: client.stats(ns, "podinfo"),
        {
            "insiders": {"namespace": ns, "service": "podinfo", "headers": {"x-canary": "insider"}},
            "others": {"namespace": ns, "service": "podinfo"},
        },
    )
    assert set(mesh["insiders"]) == {"podinfo-canary"}, mesh
    assert set(mesh["others"]) == {"podinfo-primary"}, mesh

    edge = drive(
        client,
        lambda: client.host_stats(host),
        {
            # The namespace only marks the streams as this test's: the kube fixture stops them.
            "edge-insiders": {"namespace": ns, "service": "", "host": host, "cookies": {"session": "1", "canary": "always"}},
            "edge-others": {"namespace": ns, "service": "", "host": host},
        },
    )
    assert set(edge["edge-insiders"]) == {"podinfo-canary"}, edge
    assert set(edge["edge-others"]) == {"podinfo-primary"}, edge
    # Every request of the default rule was copied to the canary, counted apart from the answers.
    default_rule = sum(edge["edge-others"].values())
    wait_for(
        lambda: client.host_stats(host).mirrored.get("podinfo-canary", 0),
        lambda copies: copies == default_rule,
        timeout=30,
        what=f"{default_rule} mirrored copies",
    )
    assert client.host_stats(host).requests.get("podinfo-canary", 0) == edge["edge-insiders"]["podinfo-canary"]


def test_smi_ab_through_an_http_route_group(env: Environment, kube: Kube, podinfo: MeshClient) -> None:
    env.use_flavour("sdk")  # TrafficSplit and HTTPRouteGroup v1alpha4
    ns, client = kube.namespace, podinfo
    custom = kube.custom
    custom.create_namespaced_custom_object(
        "specs.smi-spec.io", "v1alpha4", ns, "httproutegroups",
        {
            "apiVersion": "specs.smi-spec.io/v1alpha4",
            "kind": "HTTPRouteGroup",
            "metadata": {"name": "podinfo-ab"},
            "spec": {"matches": [{"name": "insiders", "headers": {"x-canary": "insider"}}]},
        },
    )  # fmt: skip
    for name, matches, backends in (
        ("podinfo", None, [("podinfo-primary", 100), ("podinfo-canary", 0)]),
        ("podinfo-ab", [{"kind": "HTTPRouteGroup", "name": "podinfo-ab"}], [("podinfo-canary", 100)]),
    ):
        spec: dict[str, Any] = {"service": "podinfo", "backends": [{"service": s, "weight": w} for s, w in backends]}
        if matches:
            spec["matches"] = matches
        custom.create_namespaced_custom_object(
            "split.smi-spec.io", "v1alpha4", ns, "trafficsplits",
            {"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit", "metadata": {"name": name}, "spec": spec},
        )  # fmt: skip
    wait_for(
        lambda: client.route(ns, "podinfo"),
        lambda r: r is not None and len(r.rules) == 2 and bool(r.rules[1].matches),
        timeout=30,
        what="the split with its route group",
    )
    seen = drive(
        client,
        lambda: client.stats(ns, "podinfo"),
        {
            "insiders": {"namespace": ns, "service": "podinfo", "headers": {"x-canary": "insider"}},
            "others": {"namespace": ns, "service": "podinfo"},
        },
    )
    assert set(seen["insiders"]) == {"podinfo-canary"}, seen
    assert set(seen["others"]) == {"podinfo-primary"}, seen
