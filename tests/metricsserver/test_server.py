"""The whole server over real HTTPS on 127.0.0.1: discovery, answers, failures, authentication."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import pytest

from canary.config import Mesh
from canary.metrics.smi import parse_traffic_metrics
from canary.metricsserver.meshes import default_query_set

from .conftest import FakeInventory, FakePrometheus, Server, cluster_objects

API = "/apis/metrics.smi-spec.io/v1alpha1"


def metric_values(body: Mapping[str, Any]) -> dict[str, str]:
    return {m["name"]: m["value"] for m in body["metrics"]}


def units(body: Mapping[str, Any]) -> dict[str, str | None]:
    return {m["name"]: m.get("unit") for m in body["metrics"]}


# --- discovery ---------------------------------------------------------------------------------


async def test_discovery_documents(server: Server) -> None:
    status, groups = await server.get("/apis")
    assert status == 200
    assert groups["kind"] == "APIGroupList"
    assert groups["groups"][0]["name"] == "metrics.smi-spec.io"
    assert groups["groups"][0]["preferredVersion"] == {"groupVersion": "metrics.smi-spec.io/v1alpha1",
                                                       "version": "v1alpha1"}

    status, group = await server.get("/apis/metrics.smi-spec.io")
    assert status == 200 and group["kind"] == "APIGroup" and group["name"] == "metrics.smi-spec.io"

    status, resources = await server.get(API)
    assert status == 200
    assert resources["kind"] == "APIResourceList"
    assert resources["groupVersion"] == "metrics.smi-spec.io/v1alpha1"
    by_name = {r["name"]: r for r in resources["resources"]}
    for kind in ("deployments", "pods", "daemonsets", "statefulsets"):
        assert by_name[kind]["namespaced"] is True
        assert by_name[kind]["kind"] == "TrafficMetrics"
        assert by_name[kind]["verbs"] == ["get", "list"]
        assert by_name[f"{kind}/edges"]["verbs"] == ["get"]
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["namespaces/edges"]["namespaced"] is False


async def test_trailing_slash_is_the_same_document(server: Server) -> None:
    assert (await server.get(API + "/"))[1]["kind"] == "APIResourceList"


async def test_openapi_documents(server: Server) -> None:
    status, v2 = await server.get("/openapi/v2")
    assert status == 200 and v2["swagger"] == "2.0" and v2["paths"] == {}
    assert "io.smi-spec.metrics.v1alpha1.TrafficMetrics" in v2["definitions"]
    status, root = await server.get("/openapi/v3")
    assert status == 200
    url = root["paths"]["apis/metrics.smi-spec.io/v1alpha1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/metrics.smi-spec.io/v1alpha1?hash=")
    status, v3 = await server.get(url)
    assert status == 200 and v3["openapi"] == "3.0.0"
    gvk = v3["components"]["schemas"]["io.smi-spec.metrics.v1alpha1.TrafficMetrics"]["x-kubernetes-group-version-kind"]
    assert gvk == [{"group": "metrics.smi-spec.io", "version": "v1alpha1", "kind": "TrafficMetrics"}]


@pytest.mark.parametrize("path", ["/openapi/v1", "/openapi/v3/apis/apps/v1", "/apis/other.example.com", "/api/v1",
                                  f"{API}/replicasets", f"{API}/namespaces/test/services/x",
                                  f"{API}/namespaces/test/deployments/podinfo/edges/more"])
async def test_unknown_paths_are_404_status(server: Server, path: str) -> None:
    status, body = await server.get(path)
    assert status == 404
    assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404


# --- one object, lists, edges ---------------------------------------------------------------


async def test_one_deployment(server: Server, prometheus: FakePrometheus) -> None:
    status, body = await server.get(f"{API}/namespaces/test/deployments/podinfo")
    assert status == 200
    assert body["apiVersion"] == "metrics.smi-spec.io/v1alpha1"
    assert body["kind"] == "TrafficMetrics"
    assert body["metadata"] == {"name": "podinfo", "namespace": "test", "creationTimestamp": "2025-01-01T12:00:00Z"}
    assert body["resource"] == {"kind": "Deployment", "namespace": "test", "name": "podinfo"}
    assert body["edge"] == {"direction": "from", "resource": None}
    assert body["timestamp"] == "2025-01-01T12:00:00Z"
    assert body["window"] == "30s"
    assert metric_values(body) == {
        "p99_response_latency": "73492m", "p90_response_latency": "40", "p50_response_latency": "10250m",
        "success_count": "1187500m", "failure_count": "12",
    }
    assert units(body)["p99_response_latency"] == "ms" and units(body)["success_count"] is None
    # The controller's own parser reads it.
    sample = parse_traffic_metrics(body)
    assert sample.values["p99_response_latency"] == pytest.approx(73.492)
    assert sample.total == pytest.approx(1199.5)
    # One query per metric, about exactly this Deployment, over the default window.
    assert len(prometheus.queries) == 5
    assert all('namespace="test", deployment="podinfo", direction="inbound"' in q and "[30s]" in q
               for q in prometheus.queries)


async def test_window_from_t(server: Server, prometheus: FakePrometheus) -> None:
    status, body = await server.get(f"{API}/namespaces/test/deployments/podinfo", params={"t": "90s"})
    assert status == 200
    assert body["window"] == "1m30s"
    assert all("[1m30s]" in q for q in prometheus.queries)


@pytest.mark.parametrize("t", [
    "soon", "10", "1d", "0s", "500ms", "25h", "1m; drop",
    # Issue 8: an overflow used to be a 500; a zero-length window used to be accepted.
    "99999999999h", "999999999h", "0.0000001ms", "24h0.001ms", "999.999ms",
    "", "-1s", "1e9s", "1_000s", "\u0661s", "nan", "inf", "1s" * 17, "9" * 5000 + "h",
])
async def test_bad_window_is_400_naming_t(server: Server, prometheus: FakePrometheus, t: str) -> None:
    status, body = await server.get(f"{API}/namespaces/test/deployments/podinfo", params={"t": t})
    assert status == 400
    assert body["kind"] == "Status" and body["code"] == 400
    assert body["reason"] == "BadRequest" and "query parameter t" in body["message"]
    assert "from 1s to 24h" in body["message"]
    assert prometheus.queries == []


@pytest.mark.parametrize("t", ["1s", "24h", "0.5m", "1h1m1.5s"])
async def test_window_edges_are_served(server: Server, t: str) -> None:
    status, _body = await server.get(f"{API}/namespaces/test/deployments/podinfo", params={"t": t})
    assert status == 200


BAD_REQUESTS: list[tuple[str, list[tuple[str, str]]]] = [
    (f"{API}/namespaces/test/deployments/podinfo", [("t", "1m"), ("t", "2m")]),
    (f"{API}/namespaces/test/deployments/{'a' * 300}", []),
    (f"{API}/namespaces/{'a' * 64}/deployments", []),
    (f"{API}/namespaces/test/deployments/-podinfo", []),
    (f"{API}/namespaces/test/deployments/pod%00info", []),
    (f"{API}/namespaces/test/deployments/pod%2Finfo", []),
    (f"{API}/namespaces/t%C3%A9st/deployments", []),
    (f"{API}/namespaces/test/pods/{'x.' * 130}", []),
    (f"{API}/namespaces/{'-' * 3}/edges", []),
    (f"{API}/namespaces/test/deployments/podinfo/edges", [("t", "99999999999h")]),
    (f"{API}/deployments", [("t", "0.0000001ms")]),
    (f"{API}/namespaces", [("t", "1" * 40 + "s")]),
]


async def test_no_bad_input_is_a_server_error(server: Server, prometheus: FakePrometheus) -> None:
    # Typed errors at every edge: each answer is a 4xx Kubernetes Status with a message.
    for path, params in BAD_REQUESTS:
        status, body = await server.get(path, params=params)
        assert 400 <= status < 500, (path, params, status, body)
        assert isinstance(body, dict) and body["kind"] == "Status" and body["code"] == status, (path, body)
        assert body["message"], (path, body)
    assert prometheus.queries == []


async def test_zero_traffic_has_zero_counts_and_no_latency(server: Server) -> None:
    status, body = await server.get(f"{API}/namespaces/test/deployments/idle")
    assert status == 200
    assert body["metrics"] == [{"name": "success_count", "value": "0"}, {"name": "failure_count", "value": "0"}]
    sample = parse_traffic_metrics(body)
    assert sample.total == 0 and "p99_response_latency" not in sample.values


async def test_latency_prometheus_cannot_compute_is_left_out(server: Server) -> None:
    status, body = await server.get(f"{API}/namespaces/test/deployments/backend")
    assert status == 200
    assert metric_values(body) == {"p99_response_latency": "12", "p90_response_latency": "9",
                                   "success_count": "50", "failure_count": "0"}


async def test_list_has_one_item_per_existing_object(server: Server, prometheus: FakePrometheus) -> None:
    status, body = await server.get(f"{API}/namespaces/test/deployments", params={"t": "1m"})
    assert status == 200
    assert body["kind"] == "TrafficMetricsList"
    assert body["resource"] == {"kind": "Deployment", "namespace": "test"}
    names = [item["resource"]["name"] for item in body["items"]]
    # ghost has series in Prometheus but no Deployment any more; idle exists without traffic.
    assert names == ["backend", "idle", "loadgen", "podinfo"]
    items = {item["resource"]["name"]: item for item in body["items"]}
    assert metric_values(items["podinfo"])["success_count"] == "1187500m"
    assert metric_values(items["idle"]) == {"success_count": "0", "failure_count": "0"}
    assert all(item["window"] == "1m" for item in body["items"])
    # Batched: five queries for the whole namespace, grouped by the Deployment.
    assert len(prometheus.queries) == 5
    assert all('deployment!=""' in q and "by (namespace, deployment" in q for q in prometheus.queries)


async def test_list_across_namespaces(server: Server) -> None:
    status, body = await server.get(f"{API}/deployments")
    assert status == 200
    keys = [(i["resource"]["namespace"], i["resource"]["name"]) for i in body["items"]]
    assert ("shop", "web") in keys and ("test", "podinfo") in keys
    web_item = next(i for i in body["items"] if i["resource"]["name"] == "web")
    assert metric_values(web_item)["success_count"] == "3"


async def test_edges_of_a_deployment(server: Server, prometheus: FakePrometheus) -> None:
    status, body = await server.get(f"{API}/namespaces/test/deployments/podinfo/edges")
    assert status == 200
    assert body["kind"] == "TrafficMetricsList"
    assert body["resource"] == {"kind": "Deployment", "namespace": "test", "name": "podinfo"}
    edges = {(i["edge"]["direction"], i["edge"]["resource"]["name"]): i for i in body["items"]}
    # The call to something that is not a Deployment (dst_deployment="") is no edge.
    assert set(edges) == {("from", "loadgen"), ("to", "backend")}
    incoming = edges[("from", "loadgen")]
    assert incoming["resource"] == {"kind": "Deployment", "namespace": "test", "name": "podinfo"}
    assert incoming["edge"]["resource"] == {"kind": "Deployment", "namespace": "test", "name": "loadgen"}
    assert metric_values(incoming) == {"p99_response_latency": "80", "success_count": "600", "failure_count": "6"}
    assert metric_values(edges[("to", "backend")]) == {"p99_response_latency": "13", "success_count": "50",
                                                       "failure_count": "0"}
    assert len(prometheus.queries) == 10
    assert sum('dst_namespace="test", dst_deployment="podinfo"' in q for q in prometheus.queries) == 5
    assert sum('namespace="test", deployment="podinfo", dst_deployment!=""' in q for q in prometheus.queries) == 5


async def test_namespace_object_edges_and_list(server: Server) -> None:
    status, body = await server.get(f"{API}/namespaces/test")
    assert status == 200
    assert body["resource"] == {"kind": "Namespace", "name": "test"}
    assert "namespace" not in body["metadata"]
    assert metric_values(body)["success_count"] == "1244500m"  # podinfo + backend + ghost

    status, body = await server.get(f"{API}/namespaces")
    assert status == 200
    assert [i["resource"]["name"] for i in body["items"]] == ["empty", "shop", "test"]

    status, body = await server.get(f"{API}/namespaces/test/edges")
    assert status == 200
    assert {(i["edge"]["direction"], i["edge"]["resource"]["name"]) for i in body["items"]} == {
        ("from", "test"), ("to", "test")}


async def test_pods(server: Server) -> None:
    status, body = await server.get(f"{API}/namespaces/test/pods/podinfo-2")
    assert status == 200
    assert body["resource"] == {"kind": "Pod", "namespace": "test", "name": "podinfo-2"}
    assert metric_values(body)["success_count"] == "187500m"


# --- failures --------------------------------------------------------------------------------


async def test_unknown_object_is_404_with_details(server: Server, prometheus: FakePrometheus) -> None:
    status, body = await server.get(f"{API}/namespaces/test/deployments/ghost")
    assert status == 404
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["reason"] == "NotFound" and body["code"] == 404
    assert body["details"] == {"name": "ghost", "group": "metrics.smi-spec.io", "kind": "deployments"}
    assert "ghost" in body["message"]
    assert prometheus.queries == []
    status, body = await server.get(f"{API}/namespaces/nowhere/edges")
    assert status == 404 and body["details"]["kind"] == "namespaces"


@pytest.mark.parametrize("path", [f"{API}/namespaces/test/deployments/Podinfo",
                                  f"{API}/namespaces/te_st/deployments",
                                  f'{API}/namespaces/test/deployments/x"}} or vector(1) or {{a="'])
async def test_invalid_names_are_400(server: Server, prometheus: FakePrometheus, path: str) -> None:
    status, body = await server.get(path)
    assert status == 400 and body["reason"] == "BadRequest"
    assert prometheus.queries == []


async def test_prometheus_error_is_503(server: Server, prometheus: FakePrometheus) -> None:
    prometheus.status = 500
    status, body = await server.get(f"{API}/namespaces/test/deployments/podinfo")
    assert status == 503
    assert body["kind"] == "Status" and body["reason"] == "ServiceUnavailable" and body["code"] == 503
    assert "Prometheus" in body["message"] and "storage is on fire" in body["message"]


async def test_prometheus_refusing_the_query_is_503(server: Server, prometheus: FakePrometheus) -> None:
    prometheus.status = 400
    status, body = await server.get(f"{API}/namespaces/test/deployments")
    assert status == 503 and "refused the query" in body["message"]


async def test_prometheus_down_is_503(start_server: Callable[..., Any]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server: Server = await start_server(closed)
    status, body = await server.get(f"{API}/namespaces/test/deployments/podinfo/edges")
    assert status == 503
    assert body["reason"] == "ServiceUnavailable"
    assert f"Prometheus at {closed}" in body["message"]


async def test_kind_the_mesh_cannot_answer_is_501(start_server: Callable[..., Any],
                                                  prometheus: FakePrometheus) -> None:
    server: Server = await start_server(prometheus.url, queries=default_query_set(Mesh.ISTIO))
    status, body = await server.get(f"{API}/namespaces/test/pods/podinfo-1")
    assert status == 501
    assert body["reason"] == "NotImplemented" and "no Pod label" in body["message"]
    status, _ = await server.get(f"{API}/namespaces/test/deployments/podinfo")
    assert status == 200


async def test_post_is_405(server: Server) -> None:
    async with server.session(server.pki.front_proxy) as session, \
            session.post(f"{API}/namespaces/test/deployments/podinfo", json={}) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
        body = await response.json()
    assert body["reason"] == "MethodNotAllowed"


# --- authentication ------------------------------------------------------------------------------


async def test_no_client_certificate_is_401(server: Server) -> None:
    async with server.session(None) as session, session.get(API, headers={"X-Remote-User": "admin"}) as response:
        assert response.status == 401
        body = await response.json()
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized"


async def test_certificate_name_not_allowed_is_403(server: Server) -> None:
    status, body = await server.get(f"{API}/namespaces/test/deployments/podinfo", pair=server.pki.intruder,
                                    headers={"X-Remote-User": "admin", "X-Remote-Group": "system:masters"})
    assert status == 403
    assert body["reason"] == "Forbidden" and "intruder" in body["message"]


async def test_certificate_from_another_ca_is_refused_at_the_handshake(server: Server) -> None:
    with pytest.raises(aiohttp.ClientError):
        await server.get(API, pair=server.pki.foreign, headers={"X-Remote-User": "admin"})


async def test_any_name_allowed_when_the_list_is_empty(start_server: Callable[..., Any],
                                                        prometheus: FakePrometheus) -> None:
    server: Server = await start_server(prometheus.url, allowed_names=())
    status, _ = await server.get(API, pair=server.pki.intruder)
    assert status == 200


async def test_front_proxy_without_user_header_is_served(server: Server) -> None:
    # The aggregator's availability check and discovery send the front-proxy cert.
    status, body = await server.get(API)
    assert status == 200 and body["kind"] == "APIResourceList"


@pytest.mark.parametrize("path", ["/healthz", "/livez"])
async def test_health_without_a_certificate(server: Server, path: str) -> None:
    status, text = await _get_without_cert(server, path)
    assert status == 200 and text == "ok\n"


async def test_readyz_follows_the_backends(server: Server) -> None:
    status, text = await _get_without_cert(server, "/readyz")
    assert status == 503 and "Prometheus" in text and "Kubernetes" in text
    # A request that reached both marks them as answering.
    assert (await server.get(f"{API}/namespaces/test/deployments/podinfo"))[0] == 200
    status, text = await _get_without_cert(server, "/readyz")
    assert status == 200 and text == "ok\n"


async def _get_without_cert(server: Server, path: str) -> tuple[int, str]:
    async with server.session(None) as session, session.get(path) as response:
        return response.status, await response.text()


async def test_inventory_is_asked_once_per_request(start_server: Callable[..., Any],
                                                   prometheus: FakePrometheus) -> None:
    inventory = FakeInventory(cluster_objects())
    server: Server = await start_server(prometheus.url, inventory=inventory)
    await server.get(f"{API}/namespaces/test/deployments/podinfo/edges")
    await server.get(f"{API}/namespaces/test/deployments")
    assert inventory.calls == 2


async def test_a_bug_is_a_500_status_and_the_server_keeps_serving(start_server: Callable[..., Any],
                                                                   prometheus: FakePrometheus) -> None:
    class Broken(FakeInventory):
        async def exists(self, kind: Any, namespace: str | None, name: str) -> bool:
            raise RuntimeError("boom")

    server: Server = await start_server(prometheus.url, inventory=Broken(cluster_objects()))
    status, body = await server.get(f"{API}/namespaces/test/deployments/podinfo")
    assert status == 500 and body["reason"] == "InternalError" and "boom" not in body["message"]
    assert (await server.get(f"{API}/namespaces/test/deployments"))[0] == 200
