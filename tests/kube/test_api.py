"""``KubeApi`` over the real ``kubernetes`` v37 client, with only the HTTP transport replaced.

The in-memory cluster checks call shapes; these tests check what the generated client really
does with our bodies (its pydantic validation and serialisation) and with the server's answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from kubernetes import client
from kubernetes.client import rest

from canary.domain.actions import Event
from canary.domain.spec import parse_canary_spec
from canary.domain.status import CanaryStatus, Phase
from canary.errors import ApiError, Conflict, NotFound
from canary.kube.api import JSON_PATCH, MERGE_PATCH, KubeApi, is_write
from canary.kube.cache import ClusterCache
from canary.kube.execute import Executor, StaleWrite
from canary.kube.fence import LeaseGuard, NotLeading
from canary.kube.revision import ConfigRef
from canary.kube.workload_kinds.daemonset import DaemonSetKind
from canary.kube.workload_kinds.deployment import DeploymentKind
from canary.kube.workloads import config_copy, owner_reference, service_bodies
from tests.kube.harness import NS, canary_body, config_map, secret, target_daemonset, target_deployment


@dataclass
class _Response:
    status: int
    data: bytes
    reason: str = "OK"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


@dataclass
class Sent:
    method: str
    url: str
    headers: Mapping[str, str]
    body: Any


@dataclass
class Transport:
    """Answers every request with the next scripted (status, body); echoes the body when none is left."""

    answers: list[tuple[int, Any]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None, body: Any = None,
                post_params: Any = None, _request_timeout: Any = None) -> rest.RESTResponse:
        self.sent.append(Sent(method, url, dict(headers or {}), body))
        status, payload = self.answers.pop(0) if self.answers else (200, body if isinstance(body, dict) else {})
        reason = {200: "OK", 201: "Created", 404: "Not Found", 409: "Conflict"}.get(status, "Error")
        return rest.RESTResponse(_Response(status, json.dumps(payload).encode(), reason))


@pytest.fixture
def transport() -> Transport:
    return Transport()


@pytest.fixture
def api(transport: Transport) -> KubeApi:
    api_client = client.ApiClient()
    api_client.rest_client = transport  # type: ignore[assignment]
    return KubeApi(api_client)


def _status(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}


@pytest.mark.parametrize(
    ("code", "error"),
    [pytest.param(404, NotFound, id="404"), pytest.param(409, Conflict, id="409"),
     pytest.param(422, ApiError, id="422"), pytest.param(500, ApiError, id="500")],
)
async def test_call_maps_http_errors_to_our_types(api: KubeApi, transport: Transport, code: int,
                                                  error: type[ApiError]) -> None:
    transport.answers.append((code, _status(code, 'services "podinfo" is broken')))
    with pytest.raises(error) as raised:
        await api.call(api.core.read_namespaced_service, "podinfo", NS)
    assert type(raised.value) is error
    assert raised.value.status == code
    assert 'services "podinfo" is broken' in str(raised.value)
    assert raised.value.__cause__ is not None


async def test_served_versions_reads_api_discovery(api: KubeApi, transport: Transport) -> None:
    transport.answers.append((200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}]},
        {"name": "split.smi-spec.io", "versions": [
            {"groupVersion": "split.smi-spec.io/v1alpha2", "version": "v1alpha2"},
            {"groupVersion": "split.smi-spec.io/v1alpha1", "version": "v1alpha1"}]},
    ]}))
    assert await api.served_versions("split.smi-spec.io") == ["v1alpha2", "v1alpha1"]
    assert transport.sent[-1].url.endswith("/apis/")
    transport.answers.append((200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
    assert await api.served_versions("split.smi-spec.io") == []


async def test_get_custom_returns_plain_data(api: KubeApi, transport: Transport) -> None:
    transport.answers.append((200, {"apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
                                    "metadata": {"name": "podinfo", "resourceVersion": "3"}}))
    found = await api.get_custom("split.smi-spec.io", "v1alpha2", NS, "trafficsplits", "podinfo")
    assert found["metadata"]["resourceVersion"] == "3"
    assert transport.sent[-1].url.endswith(f"/apis/split.smi-spec.io/v1alpha2/namespaces/{NS}/trafficsplits/podinfo")


async def test_get_raw(api: KubeApi, transport: Transport) -> None:
    path = f"/apis/metrics.smi-spec.io/v1alpha1/namespaces/{NS}/deployments/podinfo"
    transport.answers.append((200, {"kind": "TrafficMetrics"}))
    assert await api.get_raw(path) == {"kind": "TrafficMetrics"}
    assert transport.sent[-1].method == "GET" and transport.sent[-1].url.endswith(path)
    transport.answers.append((404, _status(404, "not found")))
    with pytest.raises(NotFound):
        await api.get_raw(path)
    transport.answers.append((503, _status(503, "service unavailable")))
    with pytest.raises(ApiError) as raised:
        await api.get_raw(path)
    assert raised.value.status == 503 and "service unavailable" in str(raised.value)


def test_to_dict_turns_client_models_into_wire_data(api: KubeApi) -> None:
    model = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg", resource_version="4"), data={"k": "v"})
    assert api.to_dict(model) == {"metadata": {"name": "cfg", "resourceVersion": "4"}, "data": {"k": "v"}}
    assert api.to_dict({"plain": {"dict": None}}) == {"plain": {"dict": None}}


OWNER = owner_reference(canary_body())


def _deployment_with_status() -> dict[str, Any]:
    body = target_deployment()
    body["metadata"].update(uid="u", generation=1, resourceVersion="1")
    return body


def _daemonset_with_status() -> dict[str, Any]:
    body = target_daemonset()
    body["metadata"].update(uid="u", generation=1, resourceVersion="1")
    return body


@pytest.mark.parametrize(
    ("method", "body"),
    [
        pytest.param("create_namespaced_deployment",
                     DeploymentKind().primary_body(_deployment_with_status(), owner=OWNER, replicas=2,
                                                   revision="r",
                                                   copied=frozenset({ConfigRef("ConfigMap", "podinfo-config")})),
                     id="primary-deployment"),
        pytest.param("create_namespaced_daemon_set",
                     DaemonSetKind().primary_body(_daemonset_with_status(), owner=OWNER, replicas=1, revision="r",
                                                  copied=frozenset({ConfigRef("ConfigMap", "podinfo-config")})),
                     id="primary-daemonset"),
        pytest.param("create_namespaced_config_map", config_copy(config_map(), OWNER), id="configmap-copy"),
        pytest.param("create_namespaced_secret", config_copy(secret(), OWNER), id="secret-copy"),
        *(pytest.param("create_namespaced_service", body, id=f"service-{name}") for name, body in service_bodies(
            parse_canary_spec(canary_body()["spec"]), NS, {"app": "podinfo"}, OWNER).items()),
    ],
)
async def test_our_bodies_pass_the_clients_validation_unchanged(api: KubeApi, transport: Transport, method: str,
                                                                 body: dict[str, Any]) -> None:
    fn = getattr(api.apps if method.endswith(("deployment", "daemon_set")) else api.core, method)
    await api.call(fn, NS, body)
    assert transport.sent[-1].body == body


async def test_patches_go_out_with_the_content_type_we_chose(api: KubeApi, transport: Transport) -> None:
    transport.answers.append((200, _deployment_with_status()))
    await api.call(api.apps.patch_namespaced_deployment, "podinfo", NS, {"spec": {"replicas": 0}},
                   _content_type=MERGE_PATCH)
    assert transport.sent[-1].headers["Content-Type"] == MERGE_PATCH
    ops = [{"op": "replace", "path": "/spec/template", "value": {"metadata": {}}}]
    transport.answers.append((200, _deployment_with_status()))
    await api.call(api.apps.patch_namespaced_deployment, "podinfo", NS, ops, _content_type=JSON_PATCH)
    assert (transport.sent[-1].headers["Content-Type"], transport.sent[-1].body) == (JSON_PATCH, ops)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_status_patch_keeps_nulls_on_the_wire(api: KubeApi, transport: Transport,
                                                    session: aiohttp.ClientSession) -> None:
    executor = Executor(api, ClusterCache(), session)
    old = CanaryStatus(phase=Phase.PROGRESSING, handled_annotations={"pause": "true"}, message="x")
    canary = canary_body()
    canary["metadata"]["resourceVersion"] = "41"
    await executor.write_status(canary, old, old.with_(handled_annotations={}, message=""))
    sent = transport.sent[-1]
    assert sent.method == "PATCH"
    assert sent.url.endswith(f"/apis/canary.dev/v1alpha1/namespaces/{NS}/canaries/podinfo/status")
    assert sent.headers["Content-Type"] == MERGE_PATCH
    # The version the status was read at rides along: the API server refuses the patch if the
    # Canary changed since.
    assert sent.body == {"metadata": {"resourceVersion": "41"},
                         "status": {"handledAnnotations": {"pause": None}, "message": ""}}


async def test_a_refused_status_write_is_a_stale_write(api: KubeApi, transport: Transport,
                                                       session: aiohttp.ClientSession) -> None:
    transport.answers.append((409, _status(409, "the object has been modified")))
    canary = canary_body()
    canary["metadata"]["resourceVersion"] = "41"
    with pytest.raises(StaleWrite) as caught:
        await Executor(api, ClusterCache(), session).write_status(
            canary, CanaryStatus(), CanaryStatus(phase=Phase.INITIALIZING))
    assert (caught.value.key.name, caught.value.seen) == ("podinfo", "41")
    assert len(transport.sent) == 1, "a refused write is not retried as it was"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_writes_are_refused_unsent_once_the_lease_is_not_proven(transport: Transport) -> None:
    clock = Clock()
    guard = LeaseGuard(clock)
    api_client = client.ApiClient()
    api_client.rest_client = transport  # type: ignore[assignment]
    api = KubeApi(api_client, guard)
    guard.extend(110.0)
    transport.answers.append((200, _deployment_with_status()))
    await api.call(api.apps.patch_namespaced_deployment, "podinfo", NS, {"spec": {"replicas": 0}},
                   _content_type=MERGE_PATCH)
    assert len(transport.sent) == 1
    clock.now = 125.0  # frozen past the renew deadline (SIGSTOP, a node freeze)
    with pytest.raises(NotLeading, match="patch_namespaced_deployment"):
        await api.call(api.apps.patch_namespaced_deployment, "podinfo", NS, {"spec": {"replicas": 0}},
                       _content_type=MERGE_PATCH)
    with pytest.raises(NotLeading):
        await api.call(api.core.create_namespaced_event, NS, {"metadata": {"generateName": "x."}})
    assert len(transport.sent) == 1, "nothing was sent after the lease ran out"
    # Reads are not writes: a follower may still look.
    transport.answers.append((200, _deployment_with_status()))
    await api.call(api.apps.read_namespaced_deployment, "podinfo", NS)
    assert len(transport.sent) == 2
    guard.revoke()
    guard.extend(1e9)
    with pytest.raises(NotLeading, match="leadership was lost"):
        await api.call(api.core.delete_namespaced_service, "podinfo", NS)


@pytest.mark.parametrize("name", ["create_namespaced_service", "replace_namespaced_custom_object",
                                  "patch_namespaced_custom_object_status", "delete_namespaced_custom_object"])
def test_writes_are_known_by_their_verb(api: KubeApi, name: str) -> None:
    group = api.custom if "custom" in name else api.core
    assert is_write(getattr(group, name))


@pytest.mark.parametrize("name", ["read_namespaced_service", "list_namespaced_service", "get_namespaced_custom_object"])
def test_reads_are_not_writes(api: KubeApi, name: str) -> None:
    group = api.custom if "custom" in name else api.core
    assert not is_write(getattr(group, name))


async def test_events_are_accepted_by_the_client(api: KubeApi, transport: Transport,
                                                 session: aiohttp.ClientSession) -> None:
    canary = canary_body()
    await Executor(api, ClusterCache(), session).record(
        canary, None, Event("RouteRestored", "put back", warning=True), CanaryStatus(phase=Phase.INITIALIZED))
    sent = transport.sent[-1]
    assert sent.method == "POST" and sent.url.endswith(f"/api/v1/namespaces/{NS}/events")
    assert sent.body["involvedObject"] == {"apiVersion": "canary.dev/v1alpha1", "kind": "Canary", "name": "podinfo",
                                           "namespace": NS, "uid": "canary-uid-1"}
    assert (sent.body["reason"], sent.body["type"], sent.body["metadata"]["generateName"]) == (
        "RouteRestored", "Warning", "podinfo.")
