"""SMI A/B testing through the whole controller on the in-memory cluster: the HTTPRouteGroup is
written before the TrafficSplit that names it, fenced and owned like the route, and put back
when someone changes it; Canaries a cluster's SMI cannot serve stall with a message."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import pytest

from canary.domain.actions import SetRoute
from canary.domain.spec import parse_canary_spec
from canary.domain.status import CanaryStatus, ConditionType, Phase
from canary.domain.weights import ALL_PRIMARY, Weights
from canary.kube.cache import ClusterCache, ObjectKey
from canary.kube.execute import Executor, StaleWrite, Target
from canary.kube.observe import observe
from canary.routers.smi import TrafficSplitRouter
from tests.kube.fake_cluster import ROUTE_GROUPS, FakeCluster
from tests.kube.harness import LINKERD_SMI, NS, SMI, canary_body, cluster_with_app, release

SPECS = "specs.smi-spec.io"
#: The SMI Go SDK's CRDs: TrafficSplit and HTTPRouteGroup v1alpha4.
SDK = {SMI: ["v1alpha4"], SPECS: ["v1alpha4"]}
AB = Weights(100, 0, experiment=True)
GROUP_SPEC = {"matches": [{"name": "ab-0", "pathRegex": ".*", "methods": ["*"],
                           "headers": {"x-canary": "^insider$"}}]}


def ab_canary(provider: str = "smi") -> dict[str, Any]:
    body = canary_body(provider=provider, analysis={
        "stepWeight": None, "maxWeight": None, "iterations": 3,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]})
    body["spec"]["analysis"] = {k: v for k, v in body["spec"]["analysis"].items() if v is not None}
    return body


def custom_writes(cluster: FakeCluster, kind: str) -> list[dict[str, Any]]:
    return [c.body for c in cluster.calls
            if c.method in ("create_namespaced_custom_object", "replace_namespaced_custom_object")
            and (c.body or {}).get("kind") == kind]


async def test_the_experiment_names_the_group_while_judged_and_drops_it_after() -> None:
    cluster = cluster_with_app(SDK)
    async with release(cluster, ab_canary()) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.phase is Phase.PROGRESSING and rel.status.iterations >= 1)
        during = cluster.get("TrafficSplit", NS, "podinfo")
        group = cluster.get("HTTPRouteGroup", NS, "podinfo")
        await r.run_until_phase(Phase.SUCCEEDED)
        after = cluster.get("TrafficSplit", NS, "podinfo")
        canary_uid = r.canary["metadata"]["uid"]

    assert during is not None and after is not None and group is not None
    assert during["spec"] == {"service": "podinfo", "matches": [{"kind": "HTTPRouteGroup", "name": "podinfo"}],
                              "backends": [{"service": "podinfo-primary", "weight": 0},
                                           {"service": "podinfo-canary", "weight": 100}]}
    assert after["spec"] == {"service": "podinfo", "backends": [{"service": "podinfo-primary", "weight": 100},
                                                                {"service": "podinfo-canary", "weight": 0}]}
    assert group["apiVersion"] == "specs.smi-spec.io/v1alpha4"
    assert group["spec"] == GROUP_SPEC
    assert [o["uid"] for o in group["metadata"]["ownerReferences"]] == [canary_uid]
    # The group is written once, before the first split; the split once per shape.
    assert [g["spec"] for g in custom_writes(cluster, "HTTPRouteGroup")] == [GROUP_SPEC]
    kinds = [(c.body or {}).get("kind") if c.api == "custom" else None for c in cluster.calls]
    first_group, first_split = kinds.index("HTTPRouteGroup"), kinds.index("TrafficSplit")
    assert first_group < first_split
    assert cluster.route_writes() == [ALL_PRIMARY, AB, ALL_PRIMARY]
    # Our own writes read back as ours: nothing was ever "restored".
    assert cluster.events("RouteRestored") == []


async def test_a_changed_group_is_put_back_conditionally_on_the_version_seen() -> None:
    cluster = cluster_with_app(SDK)
    async with release(cluster, ab_canary()) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.phase is Phase.PROGRESSING and rel.status.iterations >= 1)
        edited = cluster.get("HTTPRouteGroup", NS, "podinfo")
        assert edited is not None
        edited["spec"]["matches"][0]["headers"] = {"x-canary": ".*"}
        seen = cluster.apply(edited)["metadata"]["resourceVersion"]
        await r.reconcile()
        restored = cluster.get("HTTPRouteGroup", NS, "podinfo")

    assert restored is not None and restored["spec"] == GROUP_SPEC
    replace = [c for c in cluster.named("replace_namespaced_custom_object")
               if (c.body or {}).get("kind") == "HTTPRouteGroup"]
    assert [c.body["metadata"]["resourceVersion"] for c in replace] == [seen]
    assert len(cluster.events("RouteRestored")) == 1


async def test_a_deleted_group_is_created_again_before_the_split_is_trusted() -> None:
    cluster = cluster_with_app(SDK)
    async with release(cluster, ab_canary()) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.phase is Phase.PROGRESSING and rel.status.iterations >= 1)
        cluster.delete("HTTPRouteGroup", NS, "podinfo")
        await r.reconcile()
        recreated = cluster.get("HTTPRouteGroup", NS, "podinfo")

    assert recreated is not None and recreated["spec"] == GROUP_SPEC
    assert len(custom_writes(cluster, "HTTPRouteGroup")) == 2


@pytest.mark.parametrize(("served", "reason", "says"), [
    pytest.param(LINKERD_SMI, "InvalidSpec", "the TrafficSplit written here is v1alpha2, which has no matches",
                 id="split-without-matches"),
    pytest.param({SMI: ["v1alpha4"]}, "RouterUnavailable",
                 "the cluster does not serve httproutegroups.specs.smi-spec.io/v1alpha4", id="no-route-group-crd"),
    pytest.param({SMI: ["v1alpha4"], SPECS: ["v1alpha3"]}, "RouterUnavailable",
                 "the cluster does not serve httproutegroups.specs.smi-spec.io/v1alpha4", id="unpaired-version"),
])
async def test_a_cluster_that_cannot_serve_smi_ab_stalls_the_canary(
        served: dict[str, list[str]], reason: str, says: str) -> None:
    cluster = cluster_with_app(served)
    async with release(cluster, ab_canary()) as r:
        for _ in range(3):
            await r.reconcile()
            r.advance()
        stalled, found_reason, message = r.condition(ConditionType.STALLED)
    assert (stalled, found_reason) == (True, reason)
    assert message.startswith("spec.analysis.match: ") and says in message
    assert cluster.route_writes() == [] and custom_writes(cluster, "HTTPRouteGroup") == []


async def test_query_parameter_matches_stall_an_smi_canary_naming_the_field() -> None:
    cluster = cluster_with_app(SDK)
    body = ab_canary()
    body["spec"]["analysis"]["match"] = [{"queryParams": {"beta": {"exact": "on"}}}]
    async with release(cluster, copy.deepcopy(body)) as r:
        for _ in range(3):
            await r.reconcile()
            r.advance()
        stalled, reason, message = r.condition(ConditionType.STALLED)
    assert (stalled, reason) == (True, "InvalidSpec")
    assert message.startswith("spec.analysis.match[0].queryParams: spec.provider 'smi' does A/B testing with an "
                              "SMI HTTPRouteGroup")
    assert cluster.route_writes() == []


def edit_group(cluster: FakeCluster, headers: dict[str, str]) -> None:
    group = cluster.get("HTTPRouteGroup", NS, "podinfo")
    assert group is not None
    group["spec"]["matches"][0]["headers"] = headers
    cluster.apply(group)


def _target(cluster: FakeCluster, cache: ClusterCache, canary: dict[str, Any]) -> Target:
    """The decision's snapshot: every route and companion in the cluster now, through the cache."""
    for (kind, namespace, name), obj in cluster.objects.items():
        if kind in ROUTE_GROUPS:
            cache.put(ObjectKey.route(ROUTE_GROUPS[kind], namespace, name), copy.deepcopy(obj))
    spec = parse_canary_spec(canary["spec"])
    router = TrafficSplitRouter("v1alpha4")
    return Target(canary=canary, spec=spec, observation=observe(canary, spec, cache, router), router=router)


async def test_a_group_changed_since_the_decision_is_not_overwritten_and_is_re_read() -> None:
    cluster = cluster_with_app(SDK)
    canary = cluster.apply(ab_canary())
    cache = ClusterCache()
    async with aiohttp.ClientSession() as session:
        executor = Executor(cluster.api, cache, session)
        await executor.run(_target(cluster, cache, canary), SetRoute(ALL_PRIMARY), CanaryStatus())
        # Someone edits the group; the decision sees that edit and means to put the group back ...
        edit_group(cluster, {"x-canary": "^beta$"})
        target = _target(cluster, cache, canary)
        # ... but the group changes again after its snapshot: the decision rests on a stale view.
        edit_group(cluster, {"x-canary": ".*"})
        with pytest.raises(StaleWrite) as caught:
            await executor.run(target, SetRoute(AB), CanaryStatus())
        current = await executor.read_current(caught.value.key, target.router)
    assert caught.value.key == ObjectKey.route(SPECS, NS, "podinfo")
    assert [c.method for c in cluster.calls[-2:]] == ["replace_namespaced_custom_object", "get_namespaced_custom_object"]
    assert current is not None and current["spec"]["matches"][0]["headers"] == {"x-canary": ".*"}
    # The split was not touched: the group is written first, and its refusal stopped the action.
    split = cluster.get("TrafficSplit", NS, "podinfo")
    assert split is not None and "matches" not in split["spec"]
