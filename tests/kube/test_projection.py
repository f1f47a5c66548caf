"""The cache keeps projections: everything a reader uses survives, the bookkeeping does not.

Each object here is shaped as the API server sends it (managedFields, kubectl's last-applied
annotation, condition timestamps, a Service's cluster IPs), and each reader that works on cached
bodies (readiness, revisions, the primary's body and promotion patch, Service comparison, route
weights, the autoscaler copy) must answer the same from the projection as from the whole object.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from canary.domain.autoscaler_spec import parse_autoscaler_ref
from canary.domain.spec import parse_canary_spec
from canary.domain.weights import Weights
from canary.kube.cache import ClusterCache, Kind, ObjectKey
from canary.kube.observe import observe
from canary.kube.projection import LAST_APPLIED, project
from canary.kube.revision import ConfigRef, config_refs, revision_of
from canary.kube.scalers import held_at_zero, primary_scaler, scaler_in_sync
from canary.kube.workload_kinds.registry import WORKLOAD_KINDS, workload_kind
from canary.kube.workloads import (
    discovered_ports, match_labels, owner_reference, service_bodies, service_matches,
)
from canary.routers.base import RouteOptions, RouteTarget
from canary.routers.smi import TrafficSplitRouter
from tests.kube.harness import NS, canary_body, config_map, secret, target_daemonset, target_deployment

MANAGED_FIELDS = [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2026-03-01T12:00:00Z",
                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
SMI = TrafficSplitRouter("v1alpha2")


def as_served(body: dict[str, Any], **status: Any) -> dict[str, Any]:
    """``body`` as the API server returns it after ``kubectl apply``, with ``status``."""
    out = copy.deepcopy(body)
    meta = out["metadata"]
    applied = json.dumps({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body})
    meta.update(uid=f"uid-{meta['name']}", resourceVersion="41", generation=3, creationTimestamp="2026-03-01T12:00:00Z",
                managedFields=copy.deepcopy(MANAGED_FIELDS),
                annotations={**meta.get("annotations", {}), LAST_APPLIED: applied, "team.example/owner": "web"})
    if status:
        out["status"] = status
    return out


def deployment_status(*, stuck: bool = False) -> dict[str, Any]:
    progressing = {"type": "Progressing", "status": "False" if stuck else "True",
                   "reason": "ProgressDeadlineExceeded" if stuck else "NewReplicaSetAvailable",
                   "message": 'ReplicaSet "podinfo-1" has timed out progressing.',
                   "lastUpdateTime": "2026-03-01T12:00:00Z", "lastTransitionTime": "2026-03-01T12:00:00Z"}
    return {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            "conditions": [progressing]}


def daemonset_status() -> dict[str, Any]:
    return {"observedGeneration": 3, "desiredNumberScheduled": 3, "updatedNumberScheduled": 2, "numberAvailable": 2,
            "currentNumberScheduled": 3, "numberReady": 2}


def served_service() -> dict[str, Any]:
    spec = parse_canary_spec(canary_body()["spec"])
    wanted = service_bodies(spec, NS, {"app": "podinfo"}, owner_reference(as_served(canary_body())))["podinfo"]
    body = as_served(wanted)
    body["spec"].update(clusterIP="10.0.0.7", clusterIPs=["10.0.0.7"], ipFamilies=["IPv4"], sessionAffinity="None",
                        internalTrafficPolicy="Cluster")
    body["status"] = {"loadBalancer": {}}
    return body


WORKLOADS = [
    pytest.param(as_served(target_deployment(), **deployment_status()), id="deployment"),
    pytest.param(as_served(target_deployment(), **deployment_status(stuck=True)), id="deployment-stuck"),
    pytest.param(as_served(target_daemonset(), **daemonset_status()), id="daemonset"),
]


@pytest.mark.parametrize("kind", [k for k in Kind if k not in (Kind.CONFIG_MAP, Kind.SECRET)])
def test_every_kind_keeps_what_writes_are_conditional_on_and_drops_the_bookkeeping(kind: Kind) -> None:
    body = as_served(target_deployment(), **deployment_status())
    kept = project(kind, body)["metadata"]
    assert kept["resourceVersion"] == "41"
    assert (kept["name"], kept["namespace"], kept["uid"], kept["generation"]) == ("podinfo", NS, "uid-podinfo", 3)
    assert kept["labels"] == body["metadata"]["labels"]
    assert kept["annotations"] == {"team.example/owner": "web"}
    assert "managedFields" not in kept and "creationTimestamp" not in kept


@pytest.mark.parametrize("body", WORKLOADS)
def test_a_workload_keeps_its_whole_spec_and_what_readiness_reads(body: dict[str, Any]) -> None:
    kept = project(body["kind"], body)
    assert kept["spec"] == body["spec"]
    assert (kept["apiVersion"], kept["kind"]) == (body["apiVersion"], body["kind"])
    for condition in kept["status"].get("conditions", []):
        assert set(condition) == {"type", "status", "reason", "message"}
    assert {k: v for k, v in kept["status"].items() if k != "conditions"} == {
        k: v for k, v in body["status"].items() if k != "conditions"}


@pytest.mark.parametrize("body", WORKLOADS)
def test_every_workload_reader_answers_the_same_from_the_projection(body: dict[str, Any]) -> None:
    kind = workload_kind(body["kind"])
    kept = project(body["kind"], body)
    owner = owner_reference(as_served(canary_body()))
    copied = frozenset({ConfigRef("ConfigMap", "podinfo-config")})
    spec = parse_canary_spec(canary_body(service={"port": 9898, "portDiscovery": True})["spec"])
    for threshold in (100, 50):
        assert kind.readiness(kept, threshold) == kind.readiness(body, threshold)
    assert kind.replicas(kept) == kind.replicas(body)
    assert kind.pod_template(kept) == kind.pod_template(body)
    template = kind.pod_template(kept)
    assert revision_of(template, {ref: "d" for ref in config_refs(template["spec"])}) == revision_of(
        kind.pod_template(body), {ref: "d" for ref in config_refs(kind.pod_template(body)["spec"])})
    # What the promotion writes: the primary created from the target, the template copied into it.
    assert kind.primary_body(kept, owner=owner, replicas=2, revision="r1", copied=copied) == kind.primary_body(
        body, owner=owner, replicas=2, revision="r1", copied=copied)
    assert kind.promotion_patch(kept, "r1", copied) == kind.promotion_patch(body, "r1", copied)
    assert match_labels(kept) == match_labels(body)
    assert discovered_ports(spec, kept) == discovered_ports(spec, body)


def test_the_kinds_under_test_are_every_workload_kind() -> None:
    assert {p.values[0]["kind"] for p in WORKLOADS} == set(WORKLOAD_KINDS)  # type: ignore[index]


def test_a_service_keeps_what_is_compared_and_patched() -> None:
    body = served_service()
    kept = project(Kind.SERVICE, body)
    assert kept["spec"] == {k: body["spec"][k] for k in ("type", "selector", "ports")}
    assert "status" not in kept
    # Handing a Service back drops the Canary's ownerReferences: they must still be seen.
    assert kept["metadata"]["ownerReferences"] == body["metadata"]["ownerReferences"]
    spec = parse_canary_spec(canary_body()["spec"])
    for selector in ({"app": "podinfo"}, {"app": "other"}):
        wanted = service_bodies(spec, NS, selector, owner_reference(as_served(canary_body())))["podinfo"]
        assert service_matches(kept, wanted) == service_matches(body, wanted)


def test_a_canary_keeps_spec_status_and_what_the_finalizer_and_owner_references_read() -> None:
    body = as_served(canary_body(), phase="Progressing", canaryWeight=20, checks=[{"name": "a", "value": 1.0}])
    body["metadata"].update(finalizers=["canary.dev/revert-on-deletion"], deletionTimestamp="2026-03-01T12:05:00Z")
    kept = project(Kind.CANARY, body)
    assert (kept["spec"], kept["status"]) == (body["spec"], body["status"])
    assert owner_reference(kept) == owner_reference(body)
    for key in ("finalizers", "deletionTimestamp", "generation", "resourceVersion"):
        assert kept["metadata"][key] == body["metadata"][key]


def test_a_route_keeps_its_spec_and_reads_the_same_weights() -> None:
    target = RouteTarget(namespace=NS, apex="podinfo", primary="podinfo-primary", canary="podinfo-canary", port=9898,
                         owner=owner_reference(as_served(canary_body())), labels={},
                         options=RouteOptions.of(parse_canary_spec(canary_body()["spec"])))
    body = as_served(SMI.build(target, Weights(primary=80, canary=20)))
    body["status"] = {"observed": "something a mesh wrote"}
    kept = project(Kind.ROUTE, body)
    assert kept["spec"] == body["spec"] and "status" not in kept
    assert SMI.read_weights(target, kept) == SMI.read_weights(target, body) == Weights(primary=80, canary=20)


def test_an_autoscaler_keeps_its_spec_and_the_paused_annotation() -> None:
    ref = parse_autoscaler_ref({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo"})
    body = as_served({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                      "metadata": {"name": "podinfo", "namespace": NS,
                                   "annotations": {"autoscaling.keda.sh/paused-replicas": "0"}},
                      "spec": {"scaleTargetRef": {"name": "podinfo"}, "minReplicaCount": 1, "maxReplicaCount": 5,
                               "triggers": [{"type": "prometheus", "metadata": {"query": "sum(up{app='podinfo'})"}}]}})
    body["status"] = {"conditions": [{"type": "Ready", "status": "True"}], "originalReplicaCount": 2}
    kept = project(Kind.SCALED_OBJECT, body)
    owner = owner_reference(as_served(canary_body()))
    assert held_at_zero(kept) and "status" not in kept
    assert ref is not None
    desired = primary_scaler(body, ref, "podinfo", owner)
    assert primary_scaler(kept, ref, "podinfo", owner) == desired
    # The primary's copy, as cached, still reads as in sync with what the executor would write.
    assert scaler_in_sync(project(Kind.SCALED_OBJECT, as_served(desired)), desired)


def test_the_projection_shares_nothing_with_the_decoded_event() -> None:
    body = as_served(target_deployment(), **deployment_status())
    kept = project(Kind.DEPLOYMENT, body)
    before = copy.deepcopy(kept)
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    body["metadata"]["labels"]["app"] = "changed"
    body["status"]["conditions"][0]["reason"] = "changed"
    assert kept == before


def test_the_cache_stores_projections_and_observes_from_them() -> None:
    canary = as_served(canary_body())
    spec = parse_canary_spec(canary["spec"])
    target = as_served(target_deployment(), **deployment_status())
    cache = ClusterCache()
    cache.put(ObjectKey(Kind.CANARY, NS, "podinfo"), canary)
    cache.put(ObjectKey(Kind.DEPLOYMENT, NS, "podinfo"), target)
    cache.put(ObjectKey(Kind.CONFIG_MAP, NS, "podinfo-config"), config_map())
    cache.put(ObjectKey(Kind.SECRET, NS, "podinfo-token"), secret())
    stored = cache.get(ObjectKey(Kind.DEPLOYMENT, NS, "podinfo"))
    assert stored is not None and "managedFields" not in stored["metadata"]
    assert cache.version(ObjectKey(Kind.DEPLOYMENT, NS, "podinfo")) == "41"
    found = observe(canary, spec, cache, SMI)
    kind = workload_kind("Deployment")
    digests = {ref: cache.digest(ObjectKey.config(NS, ref)) for ref in config_refs(target["spec"]["template"]["spec"])}
    assert found.observed.target.checksum == revision_of(kind.pod_template(target), digests)
    assert found.observed.target.ready == kind.readiness(target, 100)[0]
    assert found.version(ObjectKey(Kind.DEPLOYMENT, NS, "podinfo")) == "41"
    # A refused write's re-read goes through the same projection.
    newer = as_served(target_deployment(tag="6.0.1"), **deployment_status())
    newer["metadata"]["resourceVersion"] = "42"
    assert cache.refresh(ObjectKey(Kind.DEPLOYMENT, NS, "podinfo"), newer, "41")
    refreshed = cache.get(ObjectKey(Kind.DEPLOYMENT, NS, "podinfo"))
    assert refreshed is not None and LAST_APPLIED not in refreshed["metadata"]["annotations"]
    assert refreshed["spec"] == newer["spec"]
