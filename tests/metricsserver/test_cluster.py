"""The Kubernetes side, against a fake API server speaking HTTP: the authentication ConfigMap,
metadata-only lists, and ``serve()`` from settings to HTTPS answers and a clean stop."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from canary.config import Mesh
from canary.metricsserver.cluster import (
    METADATA_ACCEPT,
    KubeError,
    KubeReader,
    load_api_client,
    read_requestheader_config,
    requestheader_from_configmap,
)
from canary.metricsserver.config import ConfigError, RequestHeaderSettings, ServerSettings, StartupError
from canary.metricsserver.inventory import InventoryUnavailable, KubeInventory
from canary.metricsserver.resources import Kind
from canary.metricsserver.server import serve, serving_context
from canary.metricsserver.tls import self_signed, server_context

from .conftest import FRONT_PROXY, FakePrometheus, Pki

AUTH_PATH = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"


@dataclass
class FakeKube:
    url: str = ""
    configmap: dict[str, Any] | None = None
    deployments: dict[str, list[str]] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    status: int = 200
    requests: list[tuple[str, dict[str, str], str]] = field(default_factory=list)

    def app(self) -> web.Application:
        def metadata_list(items: list[dict[str, Any]], request: web.Request) -> web.Response:
            # Two pages when there is more than one item, whatever the limit: exercises "continue".
            if len(items) > 1 and "continue" not in request.query:
                page, token = items[:1], "page-2"
            elif "continue" in request.query:
                page, token = items[1:], ""
            else:
                page, token = items, ""
            return web.json_response({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                      "metadata": {"continue": token} if token else {}, "items": page})

        async def handle(request: web.Request) -> web.Response:
            self.requests.append((request.path, dict(request.query), request.headers.get("Accept", "")))
            if self.status != 200:
                return web.json_response({"kind": "Status", "message": "nope"}, status=self.status)
            if request.path == AUTH_PATH:
                if self.configmap is None:
                    return web.json_response({"kind": "Status", "message": "not found"}, status=404)
                return web.json_response({"kind": "ConfigMap", "data": self.configmap})
            if request.path == "/api/v1/namespaces":
                return metadata_list([{"metadata": {"name": n}} for n in self.namespaces], request)
            parts = request.path.split("/")
            if request.path.startswith("/apis/apps/v1/namespaces/") and parts[-1] == "deployments":
                namespace = parts[5]
                return metadata_list([{"metadata": {"name": n, "namespace": namespace}}
                                      for n in self.deployments.get(namespace, [])], request)
            if request.path == "/apis/apps/v1/deployments":
                return metadata_list([{"metadata": {"name": n, "namespace": ns}}
                                      for ns, names in self.deployments.items() for n in names], request)
            return web.json_response({"kind": "Status", "message": "not found"}, status=404)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        return app


@pytest.fixture
async def kube(pki: Pki) -> AsyncIterator[FakeKube]:
    fake = FakeKube(
        configmap={
            "client-ca-file": "(the cluster CA, not used by aggregated servers)",
            "requestheader-client-ca-file": pki.front_proxy_ca.pem,
            "requestheader-allowed-names": json.dumps([FRONT_PROXY]),
            "requestheader-username-headers": '["X-Remote-User"]',
            "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
        },
        deployments={"test": ["podinfo", "backend"]},
        namespaces=["test", "kube-system"],
    )
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def kubeconfig(directory: Path, server: str) -> str:
    path = directory / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {"token": "secret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))
    return str(path)


@pytest.fixture
def reader(kube: FakeKube, tmp_path: Path) -> Iterator[KubeReader]:
    client = KubeReader(load_api_client(kubeconfig(tmp_path, kube.url)))
    yield client
    client.close()


# --- the ConfigMap ---------------------------------------------------------------------------------


async def test_requestheader_settings_from_the_configmap(reader: KubeReader, pki: Pki) -> None:
    config = await read_requestheader_config(reader)
    assert config.client_ca_pem == pki.front_proxy_ca.pem
    assert config.allowed_names == (FRONT_PROXY,)
    assert config.username_headers == ("X-Remote-User",)
    assert config.extra_headers_prefixes == ("X-Remote-Extra-",)
    assert "extension-apiserver-authentication" in config.source


@pytest.mark.parametrize(("status", "hint"), [(404, "--requestheader-client-ca-file"),
                                              (403, "extension-apiserver-authentication-reader")])
async def test_an_unreadable_configmap_says_what_to_do(reader: KubeReader, kube: FakeKube, status: int,
                                                       hint: str) -> None:
    kube.status = status
    with pytest.raises(ConfigError, match=hint):
        await read_requestheader_config(reader)


def test_configmap_parsing() -> None:
    config = requestheader_from_configmap({"requestheader-client-ca-file": "-----BEGIN CERTIFICATE-----",
                                           "requestheader-allowed-names": "[]"})
    assert config.allowed_names == ()
    assert config.group_headers == ("X-Remote-Group",)  # absent: the API server's default
    with pytest.raises(ConfigError, match="no requestheader-client-ca-file"):
        requestheader_from_configmap({"client-ca-file": "x"})
    with pytest.raises(ConfigError, match="not a JSON list"):
        requestheader_from_configmap({"requestheader-client-ca-file": "-----BEGIN CERTIFICATE-----",
                                      "requestheader-allowed-names": "front-proxy-client"})


async def test_unreachable_api_is_status_zero(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = load_api_client(kubeconfig(tmp_path, closed))
    client.configuration.retries = 0
    with pytest.raises(KubeError) as caught:
        await KubeReader(client).get("/api/v1/namespaces")
    assert caught.value.status == 0
    with pytest.raises(StartupError, match="cannot read ConfigMap"):
        await read_requestheader_config(KubeReader(client))


def test_a_broken_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot configure access"):
        load_api_client(str(tmp_path / "missing"))


# --- the inventory ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_metadata_lists_are_paged_and_cached(reader: KubeReader, kube: FakeKube) -> None:
    clock = Clock()
    inventory = KubeInventory(reader, ttl=timedelta(seconds=10), min_refresh=timedelta(seconds=2), clock=clock)
    assert await inventory.names(Kind.DEPLOYMENTS, "test") == {("test", "podinfo"), ("test", "backend")}
    assert [r[0] for r in kube.requests] == ["/apis/apps/v1/namespaces/test/deployments"] * 2  # two pages
    assert kube.requests[0][1] == {"limit": "500"} and kube.requests[1][1] == {"limit": "500", "continue": "page-2"}
    assert kube.requests[0][2] == METADATA_ACCEPT

    kube.requests.clear()
    assert await inventory.exists(Kind.DEPLOYMENTS, "test", "podinfo")
    assert not await inventory.exists(Kind.DEPLOYMENTS, "test", "new")  # listed < 2 s ago: no new LIST
    assert kube.requests == []

    kube.deployments["test"].append("new")
    clock.now += 3  # a miss may list again after min_refresh
    assert await inventory.exists(Kind.DEPLOYMENTS, "test", "new")
    assert len(kube.requests) == 2

    kube.requests.clear()
    clock.now += 11  # after the TTL every call lists again
    assert await inventory.names(Kind.NAMESPACES, None) == {(None, "test"), (None, "kube-system")}
    assert await inventory.exists(Kind.DEPLOYMENTS, "test", "podinfo")
    assert {r[0] for r in kube.requests} == {"/api/v1/namespaces", "/apis/apps/v1/namespaces/test/deployments"}


async def test_concurrent_requests_share_one_list(reader: KubeReader, kube: FakeKube) -> None:
    inventory = KubeInventory(reader, ttl=timedelta(seconds=10), min_refresh=timedelta(seconds=2))
    results = await asyncio.gather(*(inventory.exists(Kind.DEPLOYMENTS, "test", "podinfo") for _ in range(20)))
    assert all(results)
    assert len(kube.requests) == 2  # one LIST (two pages) for twenty requests


async def test_api_failures_are_inventory_unavailable(reader: KubeReader, kube: FakeKube) -> None:
    kube.status = 403
    inventory = KubeInventory(reader, ttl=timedelta(seconds=10), min_refresh=timedelta(seconds=2))
    with pytest.raises(InventoryUnavailable, match="cannot list deployments") as caught:
        await inventory.exists(Kind.DEPLOYMENTS, "test", "podinfo")
    assert caught.value.status == 403
    with pytest.raises(InventoryUnavailable):
        await inventory.check()


# --- serve() end to end --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_from_settings(kube: FakeKube, prometheus: FakePrometheus, pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    settings = ServerSettings(prometheus_address=prometheus.url, mesh=Mesh.LINKERD,
                              kubeconfig=kubeconfig(tmp_path, kube.url), bind_address="127.0.0.1", secure_port=port,
                              tls_cert_file=str(pki.serving.cert), tls_private_key_file=str(pki.serving.key))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    url = f"https://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(ssl=pki.client(pki.front_proxy))) as s:
            for _ in range(1200):  # a minute: the server starts slowly on a busy machine
                try:
                    async with s.get("/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert not task.done(), task.exception()
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the server never became ready")
            path = "/apis/metrics.smi-spec.io/v1alpha1/namespaces/test/deployments"
            async with s.get(path, headers={"X-Remote-User": "jane"}) as response:
                assert response.status == 200
                body = await response.json()
        assert [i["resource"]["name"] for i in body["items"]] == ["backend", "podinfo"]
        assert {i["resource"]["name"]: i["metrics"][-2]["value"] for i in body["items"]} == {
            "backend": "50", "podinfo": "1187500m"}
        # The front proxy's allowed name came from the ConfigMap: another name of the CA is refused.
        async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(ssl=pki.client(pki.intruder))) as s, \
                s.get(path) as response:
            assert response.status == 403
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"queries_file": "/nonexistent/queries.yaml"}, "--queries-file"),
    ({"requestheader": RequestHeaderSettings(client_ca_file="/nonexistent/ca.crt")},
     "--requestheader-client-ca-file"),
    ({"tls_cert_file": "/nonexistent/tls.crt"}, "give both or neither"),
    ({"tls_cert_file": "/nonexistent/tls.crt", "tls_private_key_file": "/nonexistent/tls.key"},
     "cannot load the serving certificate"),
    ({"prometheus_address": "prometheus:9090"}, "--prometheus-address"),
])
async def test_start_up_mistakes_are_config_errors(kube: FakeKube, tmp_path: Path, overrides: dict[str, Any],
                                                   message: str) -> None:
    settings = ServerSettings(kubeconfig=kubeconfig(tmp_path, kube.url), **overrides)
    with pytest.raises(ConfigError, match=message):
        await serve(settings, asyncio.Event())


async def test_a_taken_port_is_a_startup_error(kube: FakeKube, pki: Pki, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        settings = ServerSettings(kubeconfig=kubeconfig(tmp_path, kube.url), bind_address="127.0.0.1",
                                  secure_port=sock.getsockname()[1], tls_cert_file=str(pki.serving.cert),
                                  tls_private_key_file=str(pki.serving.key))
        with pytest.raises(StartupError, match="cannot listen"):
            await serve(settings, asyncio.Event())


def test_self_signed_pair_is_loaded_from_memory(pki: Pki) -> None:
    pair = self_signed(["canary-metrics-server.canary-system.svc"])
    assert len(pair.fingerprint.split(":")) == 32
    context = server_context(pki.front_proxy_ca.pem, pair=pair)
    assert context.verify_mode.name == "CERT_OPTIONAL"
    assert serving_context(ServerSettings(), pki.front_proxy_ca.pem).verify_mode.name == "CERT_OPTIONAL"


def test_a_broken_client_ca_is_a_config_error(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="requestheader client CA"):
        server_context("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
                       cert_file=str(pki.serving.cert), key_file=str(pki.serving.key))
