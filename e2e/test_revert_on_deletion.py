"""Deleting a Canary with `revertOnDeletion: true`: the finalizer holds the deletion until the
target serves the apex Service again, and then goes, written by the controller (not kopf) as a
write conditional on the Canary's resourceVersion."""

from __future__ import annotations

from typing import Any

from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import install_app

FINALIZER = "canary.dev/revert-on-deletion"


def _finalizers(kube: Kube) -> list[str]:
    found = kube.custom_object("canary.dev", "v1alpha1", "canaries", "podinfo")
    return list(((found or {}).get("metadata") or {}).get("finalizers") or [])


def test_deletion_hands_the_apex_service_back_to_the_target(env: Environment, kube: Kube,
                                                            start_controller: StartController) -> None:
    env.use_flavour("linkerd")
    start_controller()
    install_app(kube, "podinfo", revert_on_deletion=True)
    wait_for(lambda: _finalizers(kube), lambda found: FINALIZER in found, timeout=30,
             what="the controller to add its finalizer")
    assert kube.custom_object("split.smi-spec.io", "v1alpha2", "trafficsplits", "podinfo") is not None

    kube.custom.delete_namespaced_custom_object("canary.dev", "v1alpha1", kube.namespace, "canaries", "podinfo")
    wait_for(lambda: kube.custom_object("canary.dev", "v1alpha1", "canaries", "podinfo"), lambda found: found is None,
             timeout=90, what="the Canary to be deleted once traffic is handed back")

    apex: Any = kube.core.read_namespaced_service("podinfo", kube.namespace)
    assert apex.spec.selector == {"app": "podinfo"}, "the apex Service selects the target's own pods again"
    assert not apex.metadata.owner_references, "and no longer belongs to the Canary"
    assert kube.custom_object("split.smi-spec.io", "v1alpha2", "trafficsplits", "podinfo") is None
    target = kube.deployment("podinfo")
    assert int(target["spec"]["replicas"]) > 0 and int((target.get("status") or {}).get("readyReplicas") or 0) > 0
