from __future__ import annotations

import copy
from typing import Any

import pytest

from canary.domain.spec import parse_canary_spec
from canary.kube.revision import REVISION_ANNOTATION, ConfigRef
from canary.kube.workload_kinds.deployment import DeploymentKind, deployment_readiness
from canary.kube.workloads import config_copy, discovered_ports, owner_reference, service_bodies, service_matches

DEPLOYMENT = DeploymentKind()
OWNER = {"apiVersion": "canary.dev/v1alpha1", "kind": "Canary", "name": "podinfo", "uid": "uid-1",
         "controller": True, "blockOwnerDeletion": True}
MANAGED = {"app.kubernetes.io/managed-by": "canary"}


def _target() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "target-uid", "resourceVersion": "7",
                     "generation": 3, "labels": {"app": "podinfo", "team": "web"},
                     "annotations": {"deployment.kubernetes.io/revision": "3"}},
        "spec": {
            "replicas": 0,
            "strategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo", "team": "web"}, "annotations": {"scrape": "true"}},
                "spec": {
                    "containers": [{
                        "name": "app", "image": "podinfo:6.0.1",
                        "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "missing-secret"}}],
                        "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "token", "key": "t"}}}],
                    }],
                    "initContainers": [{"name": "init", "image": "busybox",
                                        "envFrom": [{"configMapRef": {"name": "cfg"}}]}],
                    "volumes": [
                        {"name": "a", "configMap": {"name": "cfg"}},
                        {"name": "b", "secret": {"secretName": "token"}},
                        {"name": "c", "projected": {"sources": [{"configMap": {"name": "cfg"}},
                                                                {"secret": {"name": "token"}}]}},
                        {"name": "d", "configMap": {"name": "optional-missing", "optional": True}},
                    ],
                },
            },
        },
        "status": {"replicas": 0, "observedGeneration": 3},
    }


COPIED = frozenset({ConfigRef("ConfigMap", "cfg"), ConfigRef("Secret", "token")})


def _primary_template(revision: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "podinfo-primary", "team": "web"},
                     "annotations": {"scrape": "true", REVISION_ANNOTATION: revision}},
        "spec": {
            "containers": [{
                "name": "app", "image": "podinfo:6.0.1",
                "envFrom": [{"configMapRef": {"name": "cfg-primary"}}, {"secretRef": {"name": "missing-secret"}}],
                "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "token-primary", "key": "t"}}}],
            }],
            "initContainers": [{"name": "init", "image": "busybox",
                                "envFrom": [{"configMapRef": {"name": "cfg-primary"}}]}],
            "volumes": [
                {"name": "a", "configMap": {"name": "cfg-primary"}},
                {"name": "b", "secret": {"secretName": "token-primary"}},
                {"name": "c", "projected": {"sources": [{"configMap": {"name": "cfg-primary"}},
                                                        {"secret": {"name": "token-primary"}}]}},
                {"name": "d", "configMap": {"name": "optional-missing", "optional": True}},
            ],
        },
    }


def test_primary_deployment_exact_body() -> None:
    target = _target()
    before = copy.deepcopy(target)
    body = DEPLOYMENT.primary_body(target, owner=OWNER, replicas=3, revision="rev-1", copied=COPIED)
    assert body == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "podinfo-primary",
            "namespace": "test",
            "labels": {"app": "podinfo-primary", "team": "web", **MANAGED},
            "annotations": {REVISION_ANNOTATION: "rev-1"},
            "ownerReferences": [OWNER],
        },
        "spec": {
            "replicas": 3,
            "strategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": {"app": "podinfo-primary"}},
            "template": _primary_template("rev-1"),
        },
    }
    assert target == before, "the target's body must not be modified"


def test_primary_deployment_selects_its_own_pods_only() -> None:
    body = DEPLOYMENT.primary_body(_target(), owner=OWNER, replicas=1, revision="r", copied=COPIED)
    selector = body["spec"]["selector"]["matchLabels"]
    pod_labels = body["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in selector.items())
    target_pod_labels = _target()["spec"]["template"]["metadata"]["labels"]
    assert not all(target_pod_labels.get(k) == v for k, v in selector.items())


def test_primary_deployment_renames_nothing_when_no_config_was_copied() -> None:
    body = DEPLOYMENT.primary_body(_target(), owner=OWNER, replicas=1, revision="r", copied=frozenset())
    assert body["spec"]["template"]["spec"] == _target()["spec"]["template"]["spec"]


def test_promotion_patch_carries_the_template_and_revision_but_not_replicas() -> None:
    patch = DEPLOYMENT.promotion_patch(_target(), "rev-2", COPIED)
    assert patch == {
        "metadata": {"annotations": {REVISION_ANNOTATION: "rev-2"}},
        "spec": {"template": _primary_template("rev-2")},
    }


def test_a_config_only_revision_still_changes_the_primary_pod_template() -> None:
    # Same target template, new revision (a ConfigMap's data changed): the primary must roll.
    one = DEPLOYMENT.promotion_patch(_target(), "rev-1", COPIED)["spec"]["template"]
    two = DEPLOYMENT.promotion_patch(_target(), "rev-2", COPIED)["spec"]["template"]
    assert one != two


def test_config_copy_keeps_only_the_payload() -> None:
    # Labels, annotations and finalizers stay behind: GitOps tracking labels would get the copy
    # pruned, and "immutable" would make the next promotion's rewrite fail.
    source = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cfg", "namespace": "test", "uid": "u", "resourceVersion": "9", "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z", "selfLink": "/api/v1/x",
            "managedFields": [{"manager": "kubectl"}], "ownerReferences": [{"kind": "Other"}],
            "deletionTimestamp": "2026-01-02T00:00:00Z", "deletionGracePeriodSeconds": 0,
            "labels": {"app": "podinfo"}, "annotations": {"note": "x"}, "finalizers": ["x/y"],
        },
        "data": {"k": "v"},
        "binaryData": {"b": "AA=="},
        "immutable": True,
    }
    before = copy.deepcopy(source)
    assert config_copy(source, OWNER) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg-primary", "namespace": "test", "labels": dict(MANAGED),
                     "ownerReferences": [OWNER]},
        "data": {"k": "v"},
        "binaryData": {"b": "AA=="},
    }
    assert source == before


def test_config_copy_of_a_secret_keeps_its_type() -> None:
    source = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "tls", "namespace": "test"}, "data": {"tls.crt": "Y3J0"}}
    out = config_copy(source, OWNER)
    assert out["type"] == "kubernetes.io/tls"
    assert out["data"] == {"tls.crt": "Y3J0"}
    assert out["metadata"] == {"name": "tls-primary", "namespace": "test", "labels": MANAGED,
                               "ownerReferences": [OWNER]}


def test_owner_reference_points_at_the_canary() -> None:
    canary = {"apiVersion": "canary.dev/v1alpha1", "kind": "Canary",
              "metadata": {"name": "podinfo", "namespace": "test", "uid": "uid-1"}}
    assert owner_reference(canary) == OWNER


def _spec(**service: Any) -> Any:
    return parse_canary_spec({
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898, **service},
        "analysis": {"stepWeight": 10},
    })


def _service(name: str, selector: dict[str, str], target_port: int | str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "test", "labels": MANAGED, "ownerReferences": [OWNER]},
        "spec": {"type": "ClusterIP", "selector": selector,
                 "ports": [{"name": "http", "port": 9898, "targetPort": target_port, "protocol": "TCP"}]},
    }


@pytest.mark.parametrize(
    ("service", "apex", "target_port"),
    [
        pytest.param({}, "podinfo", 9898, id="targetPort-defaults-to-port"),
        pytest.param({"targetPort": 8080}, "podinfo", 8080, id="numeric-targetPort"),
        pytest.param({"targetPort": "http", "name": "frontend"}, "frontend", "http", id="named-targetPort-and-apex"),
    ],
)
def test_service_bodies(service: dict[str, Any], apex: str, target_port: int | str) -> None:
    bodies = service_bodies(_spec(**service), "test", {"app": "podinfo"}, OWNER)
    assert bodies == {
        apex: _service(apex, {"app": "podinfo-primary"}, target_port),
        f"{apex}-primary": _service(f"{apex}-primary", {"app": "podinfo-primary"}, target_port),
        f"{apex}-canary": _service(f"{apex}-canary", {"app": "podinfo"}, target_port),
    }


def test_service_port_name_follows_the_spec() -> None:
    bodies = service_bodies(_spec(portName="grpc"), "test", {"app": "podinfo"}, OWNER)
    assert {b["spec"]["ports"][0]["name"] for b in bodies.values()} == {"grpc"}


DESIRED = _service("podinfo", {"app": "podinfo-primary"}, 9898)


def _existing(selector: dict[str, str], ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "podinfo"}, "spec": {"selector": selector, "ports": ports,
                                                      "clusterIP": "10.0.0.7"}}


@pytest.mark.parametrize(
    ("existing", "matches"),
    [
        pytest.param(_existing({"app": "podinfo-primary"}, [{"port": 9898, "targetPort": 9898}]), True, id="same"),
        pytest.param(_existing({"app": "podinfo-primary"}, [{"port": 9898}]), True,
                     id="targetPort-omitted-means-port"),
        pytest.param(_existing({"app": "podinfo-primary"}, [{"port": 80, "targetPort": 8080, "name": "web"},
                                                            {"port": 9898, "targetPort": 9898, "name": "http"}]),
                     True, id="extra-ports-are-fine"),
        pytest.param(_existing({"app": "podinfo-primary"}, [{"port": 9898, "targetPort": "9898"}]), True,
                     id="targetPort-compared-as-text"),
        pytest.param(_existing({"app": "podinfo"}, [{"port": 9898, "targetPort": 9898}]), False,
                     id="selects-the-canary"),
        pytest.param(_existing({"app": "podinfo-primary", "tier": "web"}, [{"port": 9898, "targetPort": 9898}]),
                     False, id="extra-selector-key"),
        pytest.param(_existing({"app": "podinfo-primary"}, [{"port": 9898, "targetPort": 8080}]), False,
                     id="other-targetPort"),
        pytest.param(_existing({"app": "podinfo-primary"}, [{"port": 80, "targetPort": 9898}]), False,
                     id="port-missing"),
        pytest.param({"metadata": {"name": "podinfo"}}, False, id="no-spec"),
    ],
)
def test_service_matches(existing: dict[str, Any], matches: bool) -> None:
    assert service_matches(existing, DESIRED) is matches


def _deployment(spec_replicas: int = 2, generation: int = 4, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "d", "generation": generation}, "spec": {"replicas": spec_replicas},
            "status": status}


ROLLED_OUT: dict[str, Any] = {"observedGeneration": 4, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
              "availableReplicas": 2}


@pytest.mark.parametrize(
    ("deployment", "ready", "message"),
    [
        pytest.param(_deployment(**ROLLED_OUT), True, "", id="ready"),
        pytest.param(_deployment(**{**ROLLED_OUT, "updatedReplicas": 1, "replicas": 3}), False,
                     "1 of 2 replicas updated", id="progressing"),
        pytest.param(_deployment(**{**ROLLED_OUT, "replicas": 3}), False,
                     "1 old replicas pending termination", id="old-replicas-pending"),
        pytest.param(_deployment(**{**ROLLED_OUT, "availableReplicas": 1}), False,
                     "1 of 2 updated replicas available", id="unavailable"),
        pytest.param(_deployment(**{k: v for k, v in ROLLED_OUT.items() if k != "availableReplicas"}), False,
                     "0 of 2 updated replicas available", id="available-omitted-is-zero"),
        pytest.param(_deployment(spec_replicas=0, observedGeneration=4), False, "scaled to zero", id="scaled-to-zero"),
        pytest.param(_deployment(**{**ROLLED_OUT, "conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": 'ReplicaSet "d-5d4" has timed out progressing.'},
        ]}), False, 'rollout stuck: ReplicaSet "d-5d4" has timed out progressing.', id="ProgressDeadlineExceeded"),
        pytest.param(_deployment(**{**ROLLED_OUT, "observedGeneration": 3}), False,
                     "the Deployment controller has not seen the latest spec yet", id="observedGeneration-behind"),
        pytest.param(_deployment(), False, "the Deployment controller has not seen the latest spec yet",
                     id="no-status-yet"),
        pytest.param({"metadata": {"generation": 1}, "spec": {},
                      "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                                 "availableReplicas": 1}}, True, "", id="replicas-default-to-one"),
    ],
)
def test_deployment_readiness(deployment: dict[str, Any], ready: bool, message: str) -> None:
    assert deployment_readiness(deployment) == (ready, message)


@pytest.mark.parametrize(("available", "threshold", "ready"), [
    (7, 80, False), (8, 80, True), (10, 100, True), (9, 100, False), (1, 1, True), (0, 1, False),
], ids=["7of10-at-80", "8of10-at-80", "all-at-100", "9of10-at-100", "1of10-at-1", "none-at-1"])
def test_ready_threshold_is_a_share_of_the_updated_replicas(available: int, threshold: int, ready: bool) -> None:
    deployment = _deployment(spec_replicas=10, observedGeneration=4, replicas=10, updatedReplicas=10,
                             availableReplicas=available)
    assert deployment_readiness(deployment, threshold)[0] is ready


def test_service_metadata_and_app_protocol_follow_the_spec() -> None:
    bodies = service_bodies(_spec(appProtocol="kubernetes.io/h2c",
                                  apex={"labels": {"expose": "public"}, "annotations": {"a": "1"}},
                                  canary={"annotations": {"c": "2"}}), "test", {"app": "podinfo"}, OWNER)
    apex, primary, canary = bodies["podinfo"], bodies["podinfo-primary"], bodies["podinfo-canary"]
    assert apex["metadata"]["labels"] == {"expose": "public", **MANAGED} and apex["metadata"]["annotations"] == {"a": "1"}
    assert primary["metadata"]["labels"] == MANAGED and "annotations" not in primary["metadata"]
    assert canary["metadata"]["annotations"] == {"c": "2"}
    assert {b["spec"]["ports"][0]["appProtocol"] for b in bodies.values()} == {"kubernetes.io/h2c"}
    # A Service without the asked-for metadata or appProtocol is converged; others' extra labels stay.
    assert not service_matches({**apex, "metadata": {"labels": MANAGED}}, apex)
    assert service_matches({**apex, "metadata": {**apex["metadata"], "labels": {**apex["metadata"]["labels"], "x": "y"}}},
                           apex)
    plain_port = {**apex, "spec": {**apex["spec"], "ports": [{"port": 9898, "targetPort": 9898}]}}
    assert not service_matches(plain_port, apex)


def test_port_discovery_adds_every_other_container_port() -> None:
    target = _target()
    target["spec"]["template"]["spec"]["containers"] = [
        {"name": "app", "ports": [{"containerPort": 9898, "name": "http"}, {"containerPort": 9797, "name": "metrics"}]},
        {"name": "sidecar", "ports": [{"containerPort": 9999, "protocol": "UDP"}, {"containerPort": 9797}]},
    ]
    spec = _spec(portDiscovery=True)
    discovered = discovered_ports(spec, target)
    assert discovered == [
        {"name": "metrics", "port": 9797, "targetPort": 9797, "protocol": "TCP"},
        {"name": "tcp-9999", "port": 9999, "targetPort": 9999, "protocol": "UDP"},
    ]
    assert discovered_ports(_spec(), target) == []
    bodies = service_bodies(spec, "test", {"app": "podinfo"}, OWNER, discovered)
    assert [p["port"] for p in bodies["podinfo-canary"]["spec"]["ports"]] == [9898, 9797, 9999]
    # A Service missing a discovered port is converged.
    main_only = {**bodies["podinfo"], "spec": {**bodies["podinfo"]["spec"],
                                               "ports": bodies["podinfo"]["spec"]["ports"][:1]}}
    assert not service_matches(main_only, bodies["podinfo"])
