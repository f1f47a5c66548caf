"""`spec.autoscalerRef` with a real HorizontalPodAutoscaler controller (kube-controller-manager).

The primary gets its own HPA at initialization, pointed at `podinfo-primary`; a change to the
target's HPA reaches the primary's copy when a release is promoted; and while the canary sits at
zero replicas between releases, its own HPA leaves it there (the HPA controller disables
scaling of a workload at zero, which is what Flagger relies on too).

A KEDA ScaledObject is checked against a stand-in CRD only (KEDA itself is not installed): the
controller watches and writes `keda.sh/v1alpha1` objects through the real API server, but KEDA's
own reaction to what it writes is not exercised here.

The pods are kwok's, so no resource metrics exist: the HPA controller still enforces
`minReplicas`, which is what makes it visible here that each HPA acts on the right Deployment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import install_app, ship, template_version

HPA_GROUP, HPA_VERSION, HPA_PLURAL = "autoscaling", "v2", "horizontalpodautoscalers"
REF = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}


def _hpa(namespace: str, *, min_replicas: int, max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
        },
    }


def _read(kube: Kube, name: str) -> dict[str, Any] | None:
    return kube.custom_object(HPA_GROUP, HPA_VERSION, HPA_PLURAL, name)


def _condition(hpa: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for found in ((hpa or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return {}


def _current(hpa: dict[str, Any] | None) -> int:
    return int(((hpa or {}).get("status") or {}).get("currentReplicas") or 0)


def _stays_at_zero(kube: Kube) -> None:
    """The HPA controller has seen the canary at zero replicas and left it there (it reports
    ScalingDisabled only for a target it found at zero)."""

    def settled(hpa: dict[str, Any] | None) -> bool:
        active = _condition(hpa, "ScalingActive")
        return _current(hpa) == 0 and active.get("status") == "False" and active.get("reason") == "ScalingDisabled"

    wait_for(lambda: _read(kube, "podinfo"), settled, timeout=90,
             what="the HPA controller to find the canary at zero replicas and disable its scaling")
    assert kube.deployment("podinfo")["spec"]["replicas"] == 0, "the canary's HPA scaled it up from zero"


def test_the_primary_gets_its_own_hpa_synced_at_promotion(env: Environment, kube: Kube,
                                                          start_controller: StartController) -> None:
    env.use_flavour("linkerd")
    start_controller()
    kube.custom.create_namespaced_custom_object(HPA_GROUP, HPA_VERSION, kube.namespace, HPA_PLURAL,
                                                _hpa(kube.namespace, min_replicas=2, max_replicas=3))
    install_app(kube, "podinfo", replicas=1, autoscaler_ref=REF)

    copy_ = wait_for(lambda: _read(kube, "podinfo-primary"), lambda h: h is not None, timeout=30,
                     what="the primary's HPA")
    assert copy_ is not None
    assert copy_["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                               "name": "podinfo-primary"}
    assert (copy_["spec"]["minReplicas"], copy_["spec"]["maxReplicas"]) == (2, 3)
    assert [(o["kind"], o["name"]) for o in copy_["metadata"]["ownerReferences"]] == [("Canary", "podinfo")]
    # The copy drives the primary: the HPA controller lifts it to minReplicas.
    wait_for(lambda: kube.deployment("podinfo-primary")["spec"]["replicas"], lambda n: n >= 2, timeout=90,
             what="the primary's HPA to scale podinfo-primary to its minReplicas")
    _stays_at_zero(kube)

    kube.custom.patch_namespaced_custom_object(HPA_GROUP, HPA_VERSION, kube.namespace, HPA_PLURAL, "podinfo",
                                               {"spec": {"maxReplicas": 5}})
    ship(kube, "podinfo", "2")
    # Without traffic the analysis holds (noDataPolicy: hold) with the canary up, until the HPA
    # controller has seen it up too; then the on-call promote finishes the release.
    wait_for(lambda: _read(kube, "podinfo"), lambda h: _current(h) > 0, timeout=90,
             what="the HPA controller to see the canary scaled up for the release")
    kube.annotate_canary("podinfo", {"canary.dev/promote": "true"})
    final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=150)
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment("podinfo-primary")) == "2"
    synced = _read(kube, "podinfo-primary")
    assert synced is not None and synced["spec"]["maxReplicas"] == 5, "the promotion copies the target's HPA"
    assert synced["spec"]["scaleTargetRef"]["name"] == "podinfo-primary"
    # Back at zero after the release, the canary stays there although its HPA asks for two.
    _stays_at_zero(kube)


KEDA_CRD = "scaledobjects.keda.sh"


@pytest.fixture
def scaled_object_crd(kube: Kube) -> Iterator[None]:
    """A stand-in for KEDA's CRD: serves keda.sh/v1alpha1 scaledobjects and keeps any spec."""
    crds = client.ApiextensionsV1Api(kube.api)
    body: Any = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": KEDA_CRD},
        "spec": {
            "group": "keda.sh", "scope": "Namespaced",
            "names": {"plural": "scaledobjects", "singular": "scaledobject", "kind": "ScaledObject",
                      "listKind": "ScaledObjectList"},
            "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}}}],
        },
    }
    crds.create_custom_resource_definition(body)

    def conditions() -> list[Any]:
        found: Any = crds.read_custom_resource_definition(KEDA_CRD)
        return list((found.status and found.status.conditions) or [])

    wait_for(conditions,
             lambda conds: any(c.type == "Established" and c.status == "True" for c in conds), timeout=30,
             what="the stand-in ScaledObject CRD to be established")
    yield
    crds.delete_custom_resource_definition(KEDA_CRD)

    def gone() -> bool:
        try:
            crds.read_custom_resource_definition(KEDA_CRD)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    wait_for(gone, bool, timeout=60, what="the stand-in ScaledObject CRD to be deleted")


def test_a_scaled_object_gets_a_primary_copy_and_the_target_is_held_at_zero(
    env: Environment, kube: Kube, start_controller: StartController, scaled_object_crd: None,
) -> None:
    env.use_flavour("linkerd")
    kube.custom.create_namespaced_custom_object("keda.sh", "v1alpha1", kube.namespace, "scaledobjects", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "podinfo-so", "namespace": kube.namespace},
        "spec": {"scaleTargetRef": {"name": "podinfo"}, "minReplicaCount": 1, "maxReplicaCount": 3,
                 "triggers": [{"type": "prometheus", "name": "rps", "metadata": {
                     "serverAddress": "http://prometheus:9090", "threshold": "10",
                     "query": "sum(rate(requests_total{deployment='podinfo'}[1m]))"}}]},
    })
    start_controller()
    install_app(kube, "podinfo", replicas=1, autoscaler_ref={
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo-so",
        "primaryScalerReplicas": {"minReplicas": 2, "maxReplicas": 4}})

    primary = wait_for(lambda: kube.custom_object("keda.sh", "v1alpha1", "scaledobjects", "podinfo-so-primary"),
                       lambda so: so is not None, timeout=30, what="the primary's ScaledObject")
    assert primary is not None
    spec = primary["spec"]
    assert spec["scaleTargetRef"] == {"name": "podinfo-primary"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 4)
    assert spec["triggers"][0]["metadata"]["query"] == "sum(rate(requests_total{deployment='podinfo-primary'}[1m]))"
    assert [(o["kind"], o["name"]) for o in primary["metadata"]["ownerReferences"]] == [("Canary", "podinfo")]
    target = wait_for(lambda: kube.custom_object("keda.sh", "v1alpha1", "scaledobjects", "podinfo-so"),
                      lambda so: ((so or {}).get("metadata") or {}).get("annotations", {}).get(
                          "autoscaling.keda.sh/paused-replicas") == "0",
                      timeout=30, what="the target's ScaledObject held at zero (KEDA's paused-replicas)")
    assert target is not None and kube.deployment("podinfo")["spec"]["replicas"] == 0
