"""``python -m e2e.mesh`` started by the launcher against a fake API server over real HTTP:
kubeconfig loading, bearer-token auth, discovery, lists and chunked watch streams."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from canary.routers.base import RouteTarget, Weights
from canary.routers.gatewayapi import HTTPRouteRouter
from e2e.mesh.launcher import start_mesh
from e2e.processes import E2ESetupError
from tests.mesh.factories import pod_obj, service_obj

TOKEN = "s3cret-token"
TARGET = RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary", port=9898)


class FakeApiServer:
    def __init__(self) -> None:
        self.lists: dict[str, list[dict[str, Any]]] = {
            "/api/v1/services": [
                service_obj("test", "podinfo", {"app": "podinfo-primary"}),
                service_obj("test", "podinfo-primary", {"app": "podinfo-primary"}),
                service_obj("test", "podinfo-canary", {"app": "podinfo"}),
            ],
            "/api/v1/pods": [
                pod_obj("test", "podinfo-primary", "aaaaa", {"app": "podinfo-primary"}),
                pod_obj("test", "podinfo", "bbbbb", {"app": "podinfo"}, annotations={"sim.canary.dev/error-rate": "1"}),
            ],
            "/apis/gateway.networking.k8s.io/v1/httproutes": [
                HTTPRouteRouter().build(TARGET, Weights.canary_at(50)),
            ],
        }
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.unauthorized = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def push(self, path: str, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((path, event))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    api.unauthorized += 1
                    self._json(401, {"kind": "Status", "code": 401, "message": "Unauthorized"})
                    return
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/apis/gateway.networking.k8s.io":
                    self._json(200, {"kind": "APIGroup", "versions": [{"version": "v1"}, {"version": "v1beta1"}],
                                     "preferredVersion": {"version": "v1"}})  # fmt: skip
                elif url.path not in api.lists:
                    self._json(404, {"kind": "Status", "code": 404, "message": "the server could not find the requested resource"})
                elif query.get("watch") in ("1", "true"):
                    self._watch(url.path, float(query.get("timeoutSeconds", "1")))
                else:
                    self._json(200, {"items": api.lists[url.path], "metadata": {"resourceVersion": "10"}})

            def _watch(self, path: str, timeout: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                with api.lock:
                    seen = len(api.events)
                deadline = time.monotonic() + min(timeout, 2.0)
                while time.monotonic() < deadline:
                    with api.lock:
                        fresh = api.events[seen:]
                        seen = len(api.events)
                    for event_path, event in fresh:
                        if event_path == path:
                            line = json.dumps(event).encode() + b"\n"
                            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                            self.wfile.flush()
                    time.sleep(0.02)
                self.wfile.write(b"0\r\n\r\n")

        return Handler


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def kubeconfig(tmp_path: Path, server: str, token: str = TOKEN) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "fake", "user": {"token": token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )
    )
    return path


def test_mesh_process_against_an_http_api_server(api: FakeApiServer, tmp_path: Path) -> None:
    mesh = start_mesh(tmp_path / "mesh", kubeconfig(tmp_path, api.url), metrics_flavour="istio", seed=3, timeout=20)
    try:
        client = mesh.client
        health = client.healthz()
        assert health["ok"] is True
        assert health["resources"]["TrafficSplit"] == {"synced": True, "version": None, "objects": 0}
        assert health["resources"]["HTTPRoute"]["version"] == "v1"

        route = client.wait_for_route("test", "podinfo", {"podinfo-primary": 50, "podinfo-canary": 50}, 60,
                                      source_kind="HTTPRoute")  # fmt: skip
        assert route.source.api_version == "gateway.networking.k8s.io/v1"
        assert client.send("test", "podinfo-primary").status == 200
        assert client.send("test", "podinfo-canary").status == 500  # error-rate 1

        # A watch event moves all traffic to the canary.
        moved = HTTPRouteRouter().build(TARGET, Weights.canary_at(100))
        api.push("/apis/gateway.networking.k8s.io/v1/httproutes", {"type": "MODIFIED", "object": moved})
        # push() adds only a watch event, never the list a relist reads, so seeing the share move
        # proves the watch delivered it; how fast is the machine's business, not the test's.
        mesh.wait_for_canary_share("test", "podinfo", "podinfo-canary", 1.0, timeout=60)
        assert {client.send("test", "podinfo").backend for _ in range(5)} == {"podinfo-canary"}

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(mesh.metrics_url) as answer:
            text = answer.read().decode()
        assert any(l.startswith("istio_requests_total{") and 'reporter="destination"' in l for l in text.splitlines())
        assert mesh.metrics_address == f"127.0.0.1:{mesh.metrics_port}"
        state = json.loads((tmp_path / "mesh" / "mesh.json").read_text())
        assert state["pid"] == mesh.process.pid and state["controlUrl"] == mesh.control_url
        assert api.unauthorized == 0
    finally:
        mesh.stop()
    assert mesh.process.popen.returncode == 0, mesh.log_tail()
    assert "initial lists done" in mesh.log_path.read_text()


def test_start_fails_clearly_when_the_mesh_cannot_be_healthy(api: FakeApiServer, tmp_path: Path) -> None:
    with pytest.raises(E2ESetupError, match="healthz"):
        start_mesh(tmp_path / "mesh", kubeconfig(tmp_path, api.url, token="wrong"), timeout=2)
    assert api.unauthorized > 0


def test_bad_kubeconfig_exits_with_a_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(E2ESetupError, match="cannot load kubeconfig"):
        start_mesh(tmp_path / "mesh", missing, timeout=10)
