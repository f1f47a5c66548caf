"""``autoscalerRef`` against the in-memory cluster: the primary's copy of the target's HPA or
ScaledObject, created at initialization and synced at promotion, with fenced writes."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import pytest

from canary.domain.actions import EnsurePrimaryScaler
from canary.domain.autoscaler_spec import AutoscalerRef, ScalerKind
from canary.domain.spec import parse_canary_spec
from canary.domain.status import CanaryStatus, ConditionType, Phase
from canary.kube.cache import ClusterCache, Kind, ObjectKey
from canary.kube.execute import Executor, StaleWrite, Target
from canary.kube.observe import observe
from canary.kube.scalers import primary_scaler_spec
from tests.kube.fake_cluster import FakeCluster
from tests.kube.harness import NS, Release, canary_body, cluster_with_app, release

HPA_REF = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}
KEDA = {"split.smi-spec.io": ["v1alpha1", "v1alpha2"], "keda.sh": ["v1alpha1"]}


def hpa(max_replicas: int = 4, min_replicas: int = 2) -> dict[str, Any]:
    """The target's HPA as the API server stores it (defaults filled in)."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "podinfo", "namespace": NS, "labels": {"app": "podinfo"},
                     "annotations": {"argocd.argoproj.io/tracking-id": "podinfo"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
        },
    }


def scaled_object() -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "podinfo-so", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": "podinfo"}, "minReplicaCount": 1, "maxReplicaCount": 3,
            "triggers": [
                {"type": "prometheus", "name": "rps", "metadata": {
                    "serverAddress": "http://prometheus:9090", "threshold": "100",
                    "query": "sum(rate(http_requests_total{app='podinfo'}[1m]))"}},
                {"type": "prometheus", "name": "latency", "metadata": {
                    "serverAddress": "http://prometheus:9090", "threshold": "1",
                    "query": "max(latency{deployment='podinfo-canary'})"}},
                {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}},
            ],
        },
    }


def _get(cluster: FakeCluster, kind: str, name: str) -> dict[str, Any]:
    found = cluster.get(kind, NS, name)
    assert found is not None, f"no {kind} {name}"
    return found


async def _promote(rel: Release, tag: str) -> None:
    rel.push(tag)
    await rel.run_until_phase(Phase.SUCCEEDED, max_steps=60)


async def test_initialization_gives_the_primary_its_own_hpa() -> None:
    cluster = cluster_with_app()
    cluster.apply(hpa())
    async with release(cluster, canary_body(autoscalerRef=HPA_REF)) as rel:
        await rel.initialize()
        copy_ = _get(cluster, "HorizontalPodAutoscaler", "podinfo-primary")
        expected = copy.deepcopy(hpa()["spec"])
        expected["scaleTargetRef"]["name"] = "podinfo-primary"
        assert copy_["spec"] == expected
        owner = copy_["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["controller"]) for o in owner] == [("Canary", "podinfo", True)]
        # GitOps tracking stays on the source: a copy carrying it would be pruned by Argo CD.
        assert "annotations" not in copy_["metadata"]
        # The target's own HPA is left alone: one write in all, the copy's creation.
        assert _get(cluster, "HorizontalPodAutoscaler", "podinfo")["spec"] == hpa()["spec"]
        assert [c.method for c in cluster.writes() if "horizontalpodautoscalers" in c.args] == [
            "create_namespaced_custom_object"]


async def test_a_change_to_the_target_hpa_is_copied_at_promotion_only() -> None:
    cluster = cluster_with_app()
    cluster.apply(hpa(max_replicas=4))
    async with release(cluster, canary_body(autoscalerRef=HPA_REF)) as rel:
        await rel.initialize()
        cluster.apply(hpa(max_replicas=7))
        # Between releases the primary keeps the scaling rules it was promoted with (Flagger's meaning).
        await rel.reconcile()
        assert _get(cluster, "HorizontalPodAutoscaler", "podinfo-primary")["spec"]["maxReplicas"] == 4
        before = _get(cluster, "HorizontalPodAutoscaler", "podinfo-primary")["metadata"]["resourceVersion"]
        await _promote(rel, "6.0.1")
        assert _get(cluster, "HorizontalPodAutoscaler", "podinfo-primary")["spec"]["maxReplicas"] == 7
        (sync,) = [c for c in cluster.writes() if c.method == "patch_namespaced_custom_object"
                   and "horizontalpodautoscalers" in c.args]
        assert sync.body[0] == {"op": "replace", "path": "/metadata/resourceVersion", "value": before}


async def test_primary_scaler_replicas_override_the_range() -> None:
    cluster = cluster_with_app()
    cluster.apply(hpa(min_replicas=2, max_replicas=4))
    ref = {**HPA_REF, "primaryScalerReplicas": {"minReplicas": 3, "maxReplicas": 9}}
    async with release(cluster, canary_body(autoscalerRef=ref)) as rel:
        await rel.initialize()
        spec = _get(cluster, "HorizontalPodAutoscaler", "podinfo-primary")["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 9)
        # Overrides are part of what "in sync" means: a promotion does not undo them.
        await _promote(rel, "6.0.1")
        spec = _get(cluster, "HorizontalPodAutoscaler", "podinfo-primary")["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 9)
        assert not [c for c in cluster.writes() if c.method == "patch_namespaced_custom_object"
                    and "horizontalpodautoscalers" in c.args]


async def test_a_missing_hpa_stalls_the_canary_by_name_until_it_exists() -> None:
    cluster = cluster_with_app()
    async with release(cluster, canary_body(autoscalerRef=HPA_REF)) as rel:
        await rel.reconcile()
        stalled, reason, message = rel.condition(ConditionType.STALLED)
        assert (stalled, reason) == (True, "AutoscalerNotFound")
        assert "HorizontalPodAutoscaler 'podinfo'" in message and "spec.autoscalerRef" in message
        assert cluster.get("HorizontalPodAutoscaler", NS, "podinfo-primary") is None
        cluster.apply(hpa())
        await rel.run_until_phase(Phase.INITIALIZED)
        assert cluster.get("HorizontalPodAutoscaler", NS, "podinfo-primary") is not None


@pytest.mark.parametrize("exists", [True, False], ids=["sync", "create"])
async def test_a_copy_changed_since_the_decision_is_not_overwritten(exists: bool) -> None:
    cluster = cluster_with_app()
    cluster.apply(hpa(max_replicas=7))
    if exists:
        cluster.apply({**hpa(max_replicas=4), "metadata": {"name": "podinfo-primary", "namespace": NS}})
    canary = cluster.apply(canary_body(autoscalerRef=HPA_REF))
    cache = ClusterCache()
    for (kind, namespace, name), obj in cluster.objects.items():
        if kind in ("Deployment", "HorizontalPodAutoscaler"):
            cache.put(ObjectKey(Kind(kind), namespace, name), copy.deepcopy(obj))
    spec = parse_canary_spec(canary["spec"])
    target = Target(canary=canary, spec=spec, observation=observe(canary, spec, cache, None), router=None)
    # Someone writes the copy after the observation the decision rests on (or creates it).
    theirs = {**hpa(max_replicas=5), "metadata": {"name": "podinfo-primary", "namespace": NS}}
    theirs["spec"]["scaleTargetRef"]["name"] = "podinfo-primary"
    cluster.apply(theirs)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(StaleWrite) as caught:
            await Executor(cluster.api, cache, session).run(target, EnsurePrimaryScaler(),
                                                            CanaryStatus(phase=Phase.PROMOTING))
    assert caught.value.key == ObjectKey(Kind.HPA, NS, "podinfo-primary")
    assert _get(cluster, "HorizontalPodAutoscaler", "podinfo-primary")["spec"]["maxReplicas"] == 5


async def test_a_scaled_object_copy_asks_its_queries_about_the_primary() -> None:
    cluster = cluster_with_app(KEDA)
    cluster.apply(scaled_object())
    ref = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo-so",
           "primaryScalerQueries": {"latency": "max(latency{deployment='podinfo-primary'})"},
           "primaryScalerReplicas": {"minReplicas": 2}}
    async with release(cluster, canary_body(autoscalerRef=ref)) as rel:
        await rel.initialize()
        spec = _get(cluster, "ScaledObject", "podinfo-so-primary")["spec"]
        assert spec["scaleTargetRef"] == {"name": "podinfo-primary"}
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 3)
        queries = [t["metadata"].get("query") for t in spec["triggers"]]
        assert queries == ["sum(rate(http_requests_total{app='podinfo-primary'}[1m]))",
                           "max(latency{deployment='podinfo-primary'})", None]


@pytest.mark.parametrize("query, expected", [
    ("rate(x{app='podinfo'}[1m])", "rate(x{app='podinfo-primary'}[1m])"),
    ("rate(x{app='podinfo-canary'}[1m])", "rate(x{app='podinfo-primary'}[1m])"),
    ("rate(x{app='podinfo-primary'}[1m])", "rate(x{app='podinfo-primary'}[1m])"),
    ("rate(x{app='other'}[1m])", "rate(x{app='other'}[1m])"),
], ids=["target", "canary", "already-primary", "unrelated"])
def test_the_fallback_rewrite_never_doubles_the_suffix(query: str, expected: str) -> None:
    ref = AutoscalerRef(name="so", kind=ScalerKind.SCALED_OBJECT)
    spec = primary_scaler_spec({"scaleTargetRef": {"name": "podinfo"},
                                "triggers": [{"type": "prometheus", "metadata": {"query": query}}]}, ref, "podinfo")
    assert spec["triggers"][0]["metadata"]["query"] == expected


def _paused(cluster: FakeCluster) -> str | None:
    annotations = _get(cluster, "ScaledObject", "podinfo-so")["metadata"].get("annotations") or {}
    value = annotations.get("autoscaling.keda.sh/paused-replicas")
    return None if value is None else str(value)


async def test_keda_holds_the_canary_at_zero_between_releases_only() -> None:
    cluster = cluster_with_app(KEDA)
    so = scaled_object()
    so["metadata"]["annotations"] = {"owner": "gitops"}
    cluster.apply(so)
    ref = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo-so"}
    async with release(cluster, canary_body(autoscalerRef=ref)) as rel:
        await rel.initialize()
        assert _paused(cluster) == "0", "KEDA would wake the canary from zero"
        assert rel.deployment("podinfo")["spec"]["replicas"] == 0
        rel.push("6.0.1")
        await rel.run_until(lambda r: r.deployment("podinfo")["spec"]["replicas"] > 0)
        assert _paused(cluster) is None, "the canary under analysis scales by its ScaledObject"
        await rel.run_until_phase(Phase.SUCCEEDED, max_steps=60)
        assert _paused(cluster) == "0"
        # Someone else's annotations survive, and every pause write was conditional.
        assert _get(cluster, "ScaledObject", "podinfo-so")["metadata"]["annotations"]["owner"] == "gitops"
        pauses = [c for c in cluster.writes() if c.method == "patch_namespaced_custom_object"
                  and c.args[4] == "podinfo-so"]
        assert len(pauses) == 3 and all(c.body["metadata"]["resourceVersion"] for c in pauses)
