"""The workload kinds: the registry, and DaemonSets (Deployments: tests/kube/test_workloads.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from canary.domain.spec import TARGET_KINDS
from canary.errors import SpecError
from canary.kube.cache import Kind
from canary.kube.handlers import WATCHED
from canary.kube.revision import REVISION_ANNOTATION, ConfigRef, revision_of
from canary.kube.workload_kinds.daemonset import SCALE_TO_ZERO_KEY, DaemonSetKind, daemonset_readiness
from canary.kube.workload_kinds.registry import WORKLOAD_KINDS, for_cache_kind, workload_kind
from tests.kube.fake_cluster import merge_patch

DAEMON_SET = DaemonSetKind()
OWNER = {"apiVersion": "canary.dev/v1alpha1", "kind": "Canary", "name": "agent", "uid": "uid-1",
         "controller": True, "blockOwnerDeletion": True}
COPIED = frozenset({ConfigRef("ConfigMap", "cfg")})


def test_the_registry_serves_exactly_the_kinds_the_spec_admits() -> None:
    assert sorted(WORKLOAD_KINDS) == sorted(TARGET_KINDS)
    for name, impl in WORKLOAD_KINDS.items():
        assert workload_kind(name) is impl and for_cache_kind(impl.kind) is impl
        assert (impl.group, impl.plural, impl.kind) in WATCHED


def test_an_unknown_kind_is_a_spec_error_naming_the_field() -> None:
    with pytest.raises(SpecError) as info:
        workload_kind("StatefulSet")
    assert info.value.field == "spec.targetRef.kind"
    assert for_cache_kind(Kind.SERVICE) is None


def _daemonset(node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [{"name": "agent", "image": "agent:1.0", "envFrom": [{"configMapRef": {"name": "cfg"}}]}],
        "tolerations": [{"operator": "Exists"}],
    }
    if node_selector is not None:
        pod_spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "test", "uid": "ds-uid", "resourceVersion": "7", "generation": 2,
                     "labels": {"app": "agent"}},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": pod_spec},
        },
        "status": {"observedGeneration": 2, "desiredNumberScheduled": 3},
    }


def test_primary_daemonset_exact_body() -> None:
    target = _daemonset({"disk": "ssd", SCALE_TO_ZERO_KEY: "true"})
    before = copy.deepcopy(target)
    body = DAEMON_SET.primary_body(target, owner=OWNER, replicas=1, revision="rev-1", copied=COPIED)
    assert body == {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "agent-primary",
            "namespace": "test",
            "labels": {"app": "agent-primary", "app.kubernetes.io/managed-by": "canary"},
            "annotations": {REVISION_ANNOTATION: "rev-1"},
            "ownerReferences": [OWNER],
        },
        "spec": {
            "selector": {"matchLabels": {"app": "agent-primary"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "agent-primary"}, "annotations": {REVISION_ANNOTATION: "rev-1"}},
                "spec": {
                    "containers": [{"name": "agent", "image": "agent:1.0",
                                    "envFrom": [{"configMapRef": {"name": "cfg-primary"}}]}],
                    "tolerations": [{"operator": "Exists"}],
                    # The user's own selector stays; the controller's scale-to-zero key does not.
                    "nodeSelector": {"disk": "ssd"},
                },
            },
        },
    }
    assert target == before, "the target's body must not be modified"


def test_promotion_patch_carries_the_template_without_the_scale_to_zero_key() -> None:
    patch = DAEMON_SET.promotion_patch(_daemonset({SCALE_TO_ZERO_KEY: "true"}), "rev-2", COPIED)
    assert patch["metadata"] == {"annotations": {REVISION_ANNOTATION: "rev-2"}}
    assert "nodeSelector" not in patch["spec"]["template"]["spec"]
    assert set(patch["spec"]) == {"template"}


@pytest.mark.parametrize("user_selector", [None, {"disk": "ssd"}], ids=["no-selector", "user-selector"])
def test_scaling_is_a_node_selector_that_leaves_the_revision_alone(user_selector: dict[str, str] | None) -> None:
    running = _daemonset(user_selector)
    revision = revision_of(DAEMON_SET.pod_template(running), {})
    assert DAEMON_SET.replicas(running) == 1

    down_patch = DAEMON_SET.scale_patch(0)
    assert down_patch == {"spec": {"template": {"spec": {"nodeSelector": {SCALE_TO_ZERO_KEY: "true"}}}}}
    down = merge_patch(running, down_patch)
    assert down["spec"]["template"]["spec"]["nodeSelector"] == {**(user_selector or {}), SCALE_TO_ZERO_KEY: "true"}
    assert DAEMON_SET.replicas(down) == 0
    assert revision_of(DAEMON_SET.pod_template(down), {}) == revision

    up_patch = DAEMON_SET.scale_patch(1)
    assert up_patch == {"spec": {"template": {"spec": {"nodeSelector": {SCALE_TO_ZERO_KEY: None}}}}}
    up = merge_patch(down, up_patch)
    assert DAEMON_SET.replicas(up) == 1
    assert revision_of(DAEMON_SET.pod_template(up), {}) == revision


def test_a_template_change_is_a_new_revision_even_while_scaled_to_zero() -> None:
    down = _daemonset({SCALE_TO_ZERO_KEY: "true"})
    pushed = copy.deepcopy(down)
    pushed["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:1.1"
    assert revision_of(DAEMON_SET.pod_template(pushed), {}) != revision_of(DAEMON_SET.pod_template(down), {})


def _ds(generation: int = 4, node_selector: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    template: dict[str, Any] = {"spec": {"nodeSelector": node_selector}} if node_selector else {}
    return {"metadata": {"name": "agent", "generation": generation}, "spec": {"template": template}, "status": status}


ROLLED_OUT: dict[str, Any] = {"observedGeneration": 4, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                              "updatedNumberScheduled": 3, "numberReady": 3, "numberAvailable": 3}


@pytest.mark.parametrize(
    ("daemonset", "ready", "message"),
    [
        pytest.param(_ds(**ROLLED_OUT), True, "", id="ready"),
        pytest.param(_ds(**{**ROLLED_OUT, "updatedNumberScheduled": 1}), False, "1 of 3 scheduled pods updated",
                     id="rolling"),
        pytest.param(_ds(**{**ROLLED_OUT, "numberAvailable": 2}), False, "2 of 3 scheduled pods available",
                     id="unavailable"),
        pytest.param(_ds(**{k: v for k, v in ROLLED_OUT.items() if k != "numberAvailable"}), False,
                     "0 of 3 scheduled pods available", id="available-omitted-is-zero"),
        pytest.param(_ds(node_selector={SCALE_TO_ZERO_KEY: "true"}, observedGeneration=4), False,
                     f"scaled to zero (node selector {SCALE_TO_ZERO_KEY}=true)", id="scaled-to-zero"),
        pytest.param(_ds(node_selector={"gpu": "yes"}, observedGeneration=4), False,
                     "no node to run on: its node selector, affinity or tolerations match no node", id="no-node"),
        pytest.param(_ds(**{**ROLLED_OUT, "observedGeneration": 3}), False,
                     "the DaemonSet controller has not seen the latest spec yet", id="observedGeneration-behind"),
        pytest.param(_ds(), False, "the DaemonSet controller has not seen the latest spec yet", id="no-status-yet"),
    ],
)
def test_daemonset_readiness(daemonset: dict[str, Any], ready: bool, message: str) -> None:
    assert daemonset_readiness(daemonset) == (ready, message)


@pytest.mark.parametrize(("available", "threshold", "ready"), [
    (7, 80, False), (8, 80, True), (10, 100, True), (9, 100, False), (1, 1, True), (0, 1, False),
], ids=["7of10-at-80", "8of10-at-80", "all-at-100", "9of10-at-100", "1of10-at-1", "none-at-1"])
def test_ready_threshold_is_a_share_of_the_scheduled_pods(available: int, threshold: int, ready: bool) -> None:
    daemonset = _ds(observedGeneration=4, desiredNumberScheduled=10, updatedNumberScheduled=10,
                    numberAvailable=available)
    assert DAEMON_SET.readiness(daemonset, threshold)[0] is ready
