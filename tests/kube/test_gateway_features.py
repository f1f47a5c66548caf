"""Gateway features through the whole controller on the in-memory cluster: a mirrored release on
a Gateway whose class does not list HTTPRouteRequestMirror is refused before anything is
written, goes on once the class lists it, and the classes cost no API call per tick."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from canary.domain.status import ConditionType, Phase
from canary.errors import ApiError
from tests.kube.fake_cluster import FakeCluster
from tests.kube.harness import GATEWAY, LINKERD_SMI, NS, canary_body, cluster_with_app, release

GATEWAY_CLUSTER = {**LINKERD_SMI, GATEWAY: ["v1", "v1beta1"]}
CONTROLLER = "traefik.io/gateway-controller"
TRAEFIK_LIKE = ["HTTPRoute", "Gateway", "HTTPRouteQueryParamMatching", "HTTPRouteResponseHeaderModification"]
SERVICE = {"port": 9898, "targetPort": "http", "gatewayRefs": [{"name": "public", "namespace": "gateways"}]}


def _gateway_class(features: list[Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": f"{GATEWAY}/v1", "kind": "GatewayClass", "metadata": {"name": "traefik"},
                            "spec": {"controllerName": CONTROLLER}}
    if features is not None:
        body["status"] = {"supportedFeatures": features}
    return body


def _cluster(features: list[Any] | None) -> FakeCluster:
    cluster = cluster_with_app(GATEWAY_CLUSTER)
    cluster.apply({"apiVersion": f"{GATEWAY}/v1", "kind": "Gateway",
                   "metadata": {"name": "public", "namespace": "gateways"},
                   "spec": {"gatewayClassName": "traefik", "listeners": [{"name": "web", "port": 80,
                                                                          "protocol": "HTTP"}]}})
    cluster.apply(_gateway_class(features))
    return cluster


def _mirrored(mirror: bool = True) -> dict[str, Any]:
    """A blue/green Canary on the Gateway, mirroring during its iterations."""
    body = canary_body(provider="gatewayapi", service=SERVICE, analysis={"iterations": 3, "mirror": mirror})
    for weighted in ("stepWeight", "maxWeight"):
        del body["spec"]["analysis"][weighted]
    return body


def _publish(cluster: FakeCluster, features: list[Any]) -> None:
    """The implementation updates its class's status (the fake keeps status on spec writes)."""
    cluster.delete("GatewayClass", "", "traefik")
    cluster.apply(_gateway_class(features))


def _gateway_reads(cluster: FakeCluster, since: int = 0) -> list[str]:
    return [c.method for c in cluster.calls[since:] if c.touches("gateways") or c.touches("gatewayclasses")]


@pytest.mark.parametrize("shape", [pytest.param(lambda n: {"name": n}, id="v1.2"),
                                   pytest.param(lambda n: n, id="v1.1")])
async def test_a_mirror_on_a_class_without_request_mirror_is_refused_then_goes_on_once_listed(shape: Any) -> None:
    cluster = _cluster([shape(n) for n in TRAEFIK_LIKE])
    async with release(cluster, _mirrored()) as r:
        for _ in range(3):
            await r.reconcile()
            r.advance()
        stalled, reason, message = r.condition(ConditionType.STALLED)
        assert (stalled, reason) == (True, "GatewayFeatureUnsupported")
        assert message.startswith("spec.analysis.mirror needs HTTPRouteRequestMirror")
        assert "Gateway gateways/public" in message and CONTROLLER in message
        assert cluster.route_writes() == [] and r.status.phase is None

        _publish(cluster, [shape(n) for n in [*TRAEFIK_LIKE, "HTTPRouteRequestMirror"]])
        await r.run_until_phase(Phase.INITIALIZED)
    assert cluster.route_writes() != []


async def test_removing_the_mirror_lets_the_canary_go_on_at_once() -> None:
    cluster = _cluster([{"name": n} for n in TRAEFIK_LIKE])
    async with release(cluster, _mirrored()) as r:
        await r.reconcile()
        assert r.condition(ConditionType.STALLED)[1] == "GatewayFeatureUnsupported"
        body = copy.deepcopy(r.canary)
        body["spec"]["analysis"]["mirror"] = False
        cluster.apply(body)
        await r.run_until_phase(Phase.INITIALIZED)
    assert cluster.route_writes() != []


async def test_a_class_that_publishes_no_features_is_not_refused() -> None:
    cluster = _cluster(None)
    async with release(cluster, _mirrored()) as r:
        await r.run_until_phase(Phase.INITIALIZED)
    assert cluster.route_writes() != []


async def test_an_unreadable_gateway_does_not_refuse_and_is_read_again_soon() -> None:
    cluster = _cluster([{"name": n} for n in TRAEFIK_LIKE])
    cluster.fail_next("get_namespaced_custom_object", ApiError("gateways is forbidden", 403))
    async with release(cluster, _mirrored()) as r:
        await r.reconcile()
        assert r.condition(ConditionType.STALLED)[0] is False
        r.advance(timedelta(seconds=16))  # past the recheck lifetime of an unreadable Gateway
        await r.reconcile()
        assert r.condition(ConditionType.STALLED)[1] == "GatewayFeatureUnsupported"


async def test_a_missing_gateway_is_not_refused() -> None:
    cluster = cluster_with_app(GATEWAY_CLUSTER)
    async with release(cluster, _mirrored()) as r:
        await r.run_until_phase(Phase.INITIALIZED)
    assert cluster.route_writes() != []


async def test_gateways_are_read_once_per_ttl_and_not_at_all_without_an_extended_feature() -> None:
    cluster = _cluster([{"name": n} for n in [*TRAEFIK_LIKE, "HTTPRouteRequestMirror"]])
    async with release(cluster, _mirrored()) as r:
        await r.run_until_phase(Phase.INITIALIZED)
        assert _gateway_reads(cluster) == ["get_namespaced_custom_object", "get_cluster_custom_object"]
        before = len(cluster.calls)
        await r.reconcile()  # idle, within the cache's lifetime
        assert cluster.calls[before:] == []
        r.advance(timedelta(minutes=10))
        await r.reconcile()  # the idle recheck, after the cache aged: read again, once
        assert _gateway_reads(cluster, before) == ["get_namespaced_custom_object", "get_cluster_custom_object"]

    plain = _cluster([{"name": n} for n in TRAEFIK_LIKE])
    async with release(plain, _mirrored(mirror=False)) as r:
        await r.initialize()
        r.advance(timedelta(minutes=10))
        await r.reconcile()
    assert _gateway_reads(plain) == []
