"""The in-memory cluster keeps the API server's rules the controller depends on; if it did not,
the release tests would prove nothing."""

from __future__ import annotations

from typing import Any

import pytest

from canary.errors import ApiError, Conflict, NotFound
from canary.kube.api import JSON_PATCH, MERGE_PATCH
from tests.kube.fake_cluster import FakeCluster, json_patch, merge_patch
from tests.kube.harness import LINKERD_SMI, NS, canary_body, cluster_with_app, target_deployment


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        pytest.param({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}, {"a": {"c": 2}}, id="null-removes"),
        pytest.param({"a": [1, 2]}, {"a": [3]}, {"a": [3]}, id="lists-replace"),
        pytest.param({"a": {"b": 1}}, {"a": {"c": 2}}, {"a": {"b": 1, "c": 2}}, id="maps-merge"),
        pytest.param({"a": 1}, {"b": {"c": None}}, {"a": 1, "b": {}}, id="null-in-new-map"),
    ],
)
def test_merge_patch(target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]) -> None:
    assert merge_patch(target, patch) == result


def test_json_patch() -> None:
    doc: dict[str, Any] = {"metadata": {"annotations": {"a": "1"}}, "spec": {"template": {"x": 1}, "list": [1, 2]}}
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "/spec/template", "value": {"y": 2}},
        {"op": "add", "path": "/metadata/annotations", "value": {"b": "2"}},
        {"op": "add", "path": "/spec/list/-", "value": 3},
        {"op": "remove", "path": "/spec/list/0"},
    ]
    assert json_patch(doc, ops) == {"metadata": {"annotations": {"b": "2"}}, "spec": {"template": {"y": 2},
                                                                                       "list": [2, 3]}}
    assert doc["spec"]["template"] == {"x": 1}


async def test_create_twice_is_a_conflict_and_reading_nothing_is_not_found() -> None:
    cluster = cluster_with_app()
    api = cluster.api
    with pytest.raises(Conflict):
        await api.call(api.apps.create_namespaced_deployment, NS, target_deployment())
    with pytest.raises(NotFound):
        await api.call(api.core.read_namespaced_config_map, "nope", NS)


async def test_replace_with_a_stale_resource_version_is_a_conflict() -> None:
    cluster = FakeCluster(served=dict(LINKERD_SMI))
    api = cluster.api
    body = {"apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
            "metadata": {"name": "podinfo", "namespace": NS}, "spec": {"service": "podinfo", "backends": []}}
    created = await api.call(api.custom.create_namespaced_custom_object, "split.smi-spec.io", "v1alpha2", NS,
                             "trafficsplits", body)
    await api.call(api.custom.replace_namespaced_custom_object, "split.smi-spec.io", "v1alpha2", NS,
                   "trafficsplits", "podinfo", created)
    with pytest.raises(Conflict):
        await api.call(api.custom.replace_namespaced_custom_object, "split.smi-spec.io", "v1alpha2", NS,
                       "trafficsplits", "podinfo", created)


async def test_custom_resources_answer_only_for_served_versions() -> None:
    cluster = FakeCluster(served=dict(LINKERD_SMI))
    api = cluster.api
    with pytest.raises(NotFound):
        await api.call(api.custom.create_namespaced_custom_object, "split.smi-spec.io", "v1alpha4", NS,
                       "trafficsplits", {"metadata": {"name": "x"}})
    assert await api.served_versions("split.smi-spec.io") == ["v1alpha1", "v1alpha2"]
    assert await api.served_versions("gateway.networking.k8s.io") == []


async def test_the_status_subresource_writes_status_only() -> None:
    cluster = FakeCluster()
    cluster.apply(canary_body())
    api = cluster.api
    await api.call(api.custom.patch_namespaced_custom_object_status, "canary.dev", "v1alpha1", NS, "canaries",
                   "podinfo", {"status": {"phase": "Initializing"}, "spec": {"suspend": True},
                               "metadata": {"labels": {"x": "y"}}}, _content_type=MERGE_PATCH)
    stored = cluster.get("Canary", NS, "podinfo")
    assert stored is not None
    assert stored["status"] == {"phase": "Initializing"}
    assert stored["spec"] == canary_body()["spec"]
    assert "labels" not in stored["metadata"] and stored["metadata"]["generation"] == 1


async def test_generation_moves_with_the_spec_only_and_status_follows_on_tick() -> None:
    cluster = cluster_with_app()
    api = cluster.api
    before = cluster.get("Deployment", NS, "podinfo")
    assert before is not None and before["status"]["observedGeneration"] == 1
    await api.call(api.apps.patch_namespaced_deployment, "podinfo", NS, {"metadata": {"labels": {"a": "b"}}},
                   _content_type=MERGE_PATCH)
    await api.call(api.apps.patch_namespaced_deployment, "podinfo", NS,
                   [{"op": "replace", "path": "/spec/replicas", "value": 3}], _content_type=JSON_PATCH)
    after = cluster.get("Deployment", NS, "podinfo")
    assert after is not None
    assert after["metadata"]["generation"] == 2
    assert after["status"]["observedGeneration"] == 1
    cluster.set_ready(NS, "podinfo", False)
    cluster.tick()
    ticked = cluster.get("Deployment", NS, "podinfo")
    assert ticked is not None
    assert ticked["status"] == {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                                "unavailableReplicas": 3}


async def test_calls_must_match_the_real_clients_signatures() -> None:
    cluster = cluster_with_app()
    api = cluster.api
    with pytest.raises(TypeError):
        await api.call(api.core.read_namespaced_config_map, "podinfo-config", NS, "extra")
    with pytest.raises(AssertionError, match="_content_type"):
        await api.call(api.apps.patch_namespaced_deployment, "podinfo", NS, {"spec": {"replicas": 1}})
    with pytest.raises(AssertionError):
        await api.call(lambda: None)


async def test_injected_failures_hit_once() -> None:
    cluster = cluster_with_app()
    api = cluster.api
    cluster.fail_next("read_namespaced_config_map")
    with pytest.raises(ApiError):
        await api.call(api.core.read_namespaced_config_map, "podinfo-config", NS)
    assert api.to_dict(await api.call(api.core.read_namespaced_config_map, "podinfo-config", NS))["data"]


async def test_services_need_unique_port_names_like_the_real_validation() -> None:
    cluster = FakeCluster()
    api = cluster.api
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"selector": {"a": "b"}, "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}}
    with pytest.raises(ApiError) as raised:
        await api.call(api.core.create_namespaced_service, NS, body)
    assert raised.value.status == 422
