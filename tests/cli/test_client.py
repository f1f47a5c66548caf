"""KubeCanaryClient against a local HTTP server speaking the API server's wire format."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client as k8s

from canary.cli.client import KubeCanaryClient, connect
from canary.cli.errors import CanaryNotFound, ClusterError
from tests.cli.fakes import canary

BASE = "/apis/canary.dev/v1alpha1"


class _Server:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, list[str]], str, Any]] = []
        #: path -> (status, body) for plain requests; watch requests get ``events``.
        self.routes: dict[str, tuple[int, Any]] = {}
        self.events: list[dict[str, Any]] = []


@pytest.fixture
def server() -> Iterator[tuple[_Server, KubeCanaryClient]]:
    state = _Server()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # a watch response ends when the connection closes

        def _answer(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.requests.append((self.command, url.path, query, self.headers.get("Content-Type", ""), body))
            if query.get("watch") == ["true"]:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                for event in state.events:
                    self.wfile.write(json.dumps(event).encode() + b"\n")
                return
            status, payload = state.routes.get(url.path, (404, {"kind": "Status", "code": 404, "reason": "NotFound"}))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    configuration = k8s.Configuration()
    configuration.host = f"http://127.0.0.1:{httpd.server_port}"
    api_client = k8s.ApiClient(configuration)
    api = k8s.CustomObjectsApi(api_client)
    try:
        yield state, KubeCanaryClient(api, default_namespace="team", request_timeout=5,
                                      core=k8s.CoreV1Api(api_client))
    finally:
        httpd.shutdown()


def test_get(server: tuple[_Server, KubeCanaryClient]) -> None:
    state, client = server
    state.routes[f"{BASE}/namespaces/default/canaries/podinfo"] = (200, canary())
    assert client.get("default", "podinfo")["metadata"]["name"] == "podinfo"
    assert client.default_namespace == "team"


def test_get_missing(server: tuple[_Server, KubeCanaryClient]) -> None:
    with pytest.raises(CanaryNotFound, match="default/ghost"):
        server[1].get("default", "ghost")


def test_forbidden_is_a_cluster_error(server: tuple[_Server, KubeCanaryClient]) -> None:
    state, client = server
    state.routes[f"{BASE}/namespaces/default/canaries"] = (403, {"kind": "Status", "code": 403})
    with pytest.raises(ClusterError, match="not allowed"):
        client.list("default")


def test_missing_crd_is_named(server: tuple[_Server, KubeCanaryClient]) -> None:
    with pytest.raises(ClusterError, match="is the CRD applied"):
        server[1].list(None)


def test_list_in_a_namespace_and_everywhere(server: tuple[_Server, KubeCanaryClient]) -> None:
    state, client = server
    state.routes[f"{BASE}/namespaces/default/canaries"] = (200, {"items": [canary()]})
    state.routes[f"{BASE}/canaries"] = (200, {"items": [canary(), canary(name="b", namespace="x")]})
    assert [o["metadata"]["name"] for o in client.list("default")] == ["podinfo"]
    assert len(client.list(None)) == 2


def test_patch_is_a_merge_patch_of_annotations(server: tuple[_Server, KubeCanaryClient]) -> None:
    state, client = server
    state.routes[f"{BASE}/namespaces/default/canaries/podinfo"] = (200, canary())
    client.patch_annotations("default", "podinfo", {"canary.dev/pause": None, "canary.dev/retry": "now"})
    method, path, _, content_type, body = state.requests[-1]
    assert (method, path, content_type) == ("PATCH", f"{BASE}/namespaces/default/canaries/podinfo",
                                            "application/merge-patch+json")
    assert body == {"metadata": {"annotations": {"canary.dev/pause": None, "canary.dev/retry": "now"}}}


def test_list_events_of_one_canary_keeps_the_wire_form(server: tuple[_Server, KubeCanaryClient]) -> None:
    state, client = server
    event = {"metadata": {"name": "podinfo.1", "annotations": {"canary.dev/facts": "{}"}},
             "reason": "Started", "firstTimestamp": "2026-12-07T07:00:00Z", "involvedObject": {"kind": "Canary"}}
    state.routes["/api/v1/namespaces/demo/events"] = (200, {"items": [event]})
    assert client.list_events("demo", "podinfo", "uid-1") == [event]
    _, _, query, _, _ = state.requests[-1]
    assert query["fieldSelector"] == ["involvedObject.kind=Canary,involvedObject.name=podinfo,involvedObject.uid=uid-1"]


def test_list_events_forbidden_is_a_cluster_error(server: tuple[_Server, KubeCanaryClient]) -> None:
    state, client = server
    state.routes["/api/v1/namespaces/demo/events"] = (403, {"kind": "Status", "code": 403})
    with pytest.raises(ClusterError, match="listing the events of canary demo/podinfo: not allowed"):
        client.list_events("demo", "podinfo")


def test_watch_one_canary(server: tuple[_Server, KubeCanaryClient]) -> None:
    state, client = server
    state.events = [{"type": "ADDED", "object": canary(status={"phase": "Progressing"})},
                    {"type": "MODIFIED", "object": canary(status={"phase": "Succeeded"})}]
    events = list(client.watch("default", "podinfo", 2.5))
    assert [(e["type"], e["object"]["status"]["phase"]) for e in events] == [("ADDED", "Progressing"),
                                                                             ("MODIFIED", "Succeeded")]
    _, path, query, _, _ = state.requests[-1]
    assert path == f"{BASE}/namespaces/default/canaries"
    assert query["fieldSelector"] == ["metadata.name=podinfo"]
    assert query["timeoutSeconds"] == ["3"]


def test_watch_error_event_is_a_cluster_error(server: tuple[_Server, KubeCanaryClient]) -> None:
    state, client = server
    state.events = [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                 "message": "too old resource version"}}]
    with pytest.raises(ClusterError, match="410"):
        list(client.watch(None, None, 1))
    assert state.requests[-1][1] == f"{BASE}/canaries"


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: "t"}
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: team-a}
- name: prod
  context: {cluster: c, user: u}
current-context: dev
"""


def test_connect_takes_the_namespace_from_the_context(tmp_path: Any) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    assert connect(str(path)).default_namespace == "team-a"
    assert connect(str(path), "prod").default_namespace == "default"


def test_connect_with_a_broken_kubeconfig(tmp_path: Any) -> None:
    path = tmp_path / "config"
    path.write_text("apiVersion: v1\nkind: Config\ncontexts: []\n")
    with pytest.raises(ClusterError, match="cannot configure access"):
        connect(str(path))
