"""``provider: traefik`` through ``CanaryReconciler.reconcile_once`` against the in-memory cluster:
the TraefikService written, walked, put back after a hand edit, and the Canaries refused."""

from __future__ import annotations

from typing import Any

import pytest

from canary.domain.status import ConditionType, Phase
from canary.domain.weights import ALL_PRIMARY, Weights
from tests.kube.fake_cluster import FakeCluster
from tests.kube.harness import NS, FakeEngine, canary_body, cluster_with_app, release

TRAEFIK_IO = {"traefik.io": ["v1alpha1"]}


def _traefik_service(cluster: FakeCluster) -> dict[str, Any]:
    found = cluster.get("TraefikService", NS, "podinfo")
    assert found is not None, "no TraefikService podinfo"
    return found


def _services(cluster: FakeCluster) -> list[dict[str, Any]]:
    services: list[dict[str, Any]] = _traefik_service(cluster)["spec"]["weighted"]["services"]
    return services


PRIMARY_ONLY = [{"name": "podinfo-primary", "port": 9898, "weight": 100}]


async def test_initialization_writes_a_traefik_service_with_only_the_primary() -> None:
    cluster = cluster_with_app(TRAEFIK_IO)
    async with release(cluster, canary_body(provider="traefik")) as r:
        await r.initialize()
        assert r.status.phase is Phase.INITIALIZED
    found = _traefik_service(cluster)
    assert found["apiVersion"] == "traefik.io/v1alpha1"
    assert found["metadata"]["ownerReferences"][0]["uid"] == "canary-uid-1"
    assert found["spec"] == {"weighted": {"services": PRIMARY_ONLY}}
    assert cluster.route_writes() == [ALL_PRIMARY]
    assert cluster.get("HTTPRoute", NS, "podinfo") is None and cluster.get("TrafficSplit", NS, "podinfo") is None


async def test_a_release_walks_the_weights_through_the_traefik_service_and_promotes() -> None:
    cluster = cluster_with_app(TRAEFIK_IO)
    async with release(cluster, canary_body(provider="traefik"), engine=FakeEngine(value=99.9)) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.canary_weight == 30)
        assert _services(cluster) == [{"name": "podinfo-primary", "port": 9898, "weight": 70},
                                      {"name": "podinfo-canary", "port": 9898, "weight": 30}]
        await r.run_until_phase(Phase.SUCCEEDED)
    assert cluster.route_writes()[1:] == [Weights.canary_at(w) for w in (10, 20, 30, 40, 50)] + [ALL_PRIMARY]
    assert _services(cluster) == PRIMARY_ONLY


async def test_a_failing_release_takes_the_canary_out_of_the_traefik_service() -> None:
    cluster = cluster_with_app(TRAEFIK_IO)
    async with release(cluster, canary_body(provider="traefik"), engine=FakeEngine(value=97.5)) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until_phase(Phase.FAILED)
    assert cluster.route_writes()[1:] == [Weights.canary_at(10), ALL_PRIMARY]
    assert _services(cluster) == PRIMARY_ONLY


@pytest.mark.parametrize("edit", [
    pytest.param(lambda s: s.append({"name": "podinfo-canary", "port": 9898, "weight": 0}), id="zero-weight-canary"),
    pytest.param(lambda s: s.append({"name": "podinfo-canary", "port": 9898, "weight": 100}), id="half-to-canary"),
    pytest.param(lambda s: s[0].update(port=80), id="other-port"),
])
async def test_a_traefik_service_changed_by_hand_is_put_back(edit: Any) -> None:
    cluster = cluster_with_app(TRAEFIK_IO)
    async with release(cluster, canary_body(provider="traefik")) as r:
        await r.initialize()
        await r.reconcile()
        found = _traefik_service(cluster)
        edit(found["spec"]["weighted"]["services"])
        cluster.apply(found)
        start = len(cluster.calls)
        await r.reconcile()
    assert [c.method for c in cluster.calls[start:]][-1] == "replace_namespaced_custom_object"
    assert cluster.events("RouteRestored")
    assert _services(cluster) == PRIMARY_ONLY


async def test_without_the_traefik_service_crd_the_canary_stalls_naming_it() -> None:
    cluster = cluster_with_app({})
    async with release(cluster, canary_body(provider="traefik")) as r:
        for _ in range(3):
            await r.reconcile()
            r.advance()
        stalled, reason, message = r.condition(ConditionType.STALLED)
    assert (stalled, reason) == (True, "RouterUnavailable")
    assert "traefikservices.traefik.io/v1alpha1" in message and "install Traefik's CRDs" in message
    assert cluster.route_writes() == []


async def test_session_affinity_with_traefik_stalls_naming_the_field() -> None:
    cluster = cluster_with_app(TRAEFIK_IO)
    body = canary_body(provider="traefik", analysis={"sessionAffinity": {"cookieName": "canary"}})
    async with release(cluster, body) as r:
        for _ in range(3):
            await r.reconcile()
            r.advance()
        stalled, reason, message = r.condition(ConditionType.STALLED)
    assert (stalled, reason) == (True, "InvalidSpec")
    assert message.startswith("spec.analysis.sessionAffinity is not applied with spec.provider 'traefik'")
    assert cluster.route_writes() == []


async def test_blue_green_keeps_the_traefik_service_on_the_primary_and_promotes() -> None:
    cluster = cluster_with_app(TRAEFIK_IO)
    body = canary_body(provider="traefik", analysis={"iterations": 3, "stepWeight": None, "maxWeight": None})
    for key in ("stepWeight", "maxWeight"):
        del body["spec"]["analysis"][key]
    async with release(cluster, body, engine=FakeEngine(value=99.9)) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until_phase(Phase.SUCCEEDED)
    assert set(cluster.route_writes()) == {ALL_PRIMARY}
    assert _services(cluster) == PRIMARY_ONLY
