"""A real Traefik reads this cluster: it accepts an HTTPRoute written to its Gateway, routes a
request by the route's hostname to the route's backend, counts it under the name the harness
predicts, and the harness's Prometheus scrapes those counters.

The backend is a Service without a selector whose EndpointSlice, written here, points at a
server this test runs on the root-side address of a network namespace the run creates
(``e2e.netns``; the API server refuses loopback endpoint addresses, and real pods at pod IPs are
the pod network's part): Traefik resolves it through the EndpointSlice as it would a pod's.
Traefik counts ``traefik_service_requests_total`` only around a server's proxy, so a backend
without endpoints (503 from Traefik itself) would be counted under no service at all.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kubernetes import client

from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.netns import net_host
from e2e.traefik.cluster import CONTROLLER_NAME, LISTENER_NAME, gateway_conditions
from e2e.traefik.gateway import TraefikGateway

SERVICE = "echo"
PORT = 80
HOST = "echo.traefik.test"
GATEWAY_GROUP = "gateway.networking.k8s.io"


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = b"served by the test's backend\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def backend() -> Iterator[tuple[str, int]]:
    """A plain HTTP server on an address of a network namespace made for it; (address, port)."""
    with net_host() as host:
        server = ThreadingHTTPServer((host.host_address, 0), _Answer)
        thread = threading.Thread(target=server.serve_forever, name="netns-backend", daemon=True)
        thread.start()
        try:
            yield host.host_address, int(server.server_address[1])
        finally:
            server.shutdown()
            server.server_close()


def _service(name: str) -> dict[str, Any]:
    # No selector: the EndpointSlice below is the only source of endpoints.
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": PORT, "protocol": "TCP"}]},
    }


def _endpoint_slice(name: str, address: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-netns", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True, "serving": True, "terminating": False}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


def _route(gateway: TraefikGateway) -> dict[str, Any]:
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": SERVICE},
        "spec": {
            "parentRefs": [{
                "group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway.gateway_name,
                "namespace": gateway.gateway_namespace, "sectionName": LISTENER_NAME,
            }],
            "hostnames": [HOST],
            "rules": [{"backendRefs": [{"name": SERVICE, "port": PORT}]}],
        },
    }  # fmt: skip


def _traefik_parent_conditions(kube: Kube) -> dict[str, str]:
    """The route's conditions in the parent status Traefik wrote: ``{type: status}``."""
    route = kube.custom_object(GATEWAY_GROUP, "v1", "httproutes", SERVICE) or {}
    for parent in (route.get("status") or {}).get("parents") or []:
        if parent.get("controllerName") == CONTROLLER_NAME:
            return {str(c["type"]): str(c["status"]) for c in parent.get("conditions") or []}
    return {}


def _get_through_traefik(gateway: TraefikGateway, host: str) -> int:
    request = urllib.request.Request(gateway.web_url + "/", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def echo(env: Environment, kube: Kube, backend: tuple[str, int]) -> str:
    """Service ``echo`` whose only endpoint is :func:`backend`; its name."""
    kube.core.create_namespaced_service(kube.namespace, _service(SERVICE))
    discovery: Any = client.DiscoveryV1Api(env.api)  # takes the plain dict as the API server does
    discovery.create_namespaced_endpoint_slice(kube.namespace, _endpoint_slice(SERVICE, *backend))
    return SERVICE


def _wait_served_and_counted(gateway: TraefikGateway, host: str, label: str) -> dict[str, float]:
    """Send requests for ``host`` until one is answered 200 and Traefik counts it under ``label``;
    Traefik's counts for ``label`` by code."""
    # Traefik applies a new configuration a moment after it reads it: until then the hostname is
    # unknown (404, counted under no service).
    seen = wait_for(
        lambda: (_get_through_traefik(gateway, host), gateway.requests_by_service().get(label, {})),
        lambda seen: seen[0] == 200 and seen[1].get("200", 0) >= 1,
        timeout=60,
        what=f"a request for {host} to reach the backend through Traefik and be counted under {label}",
    )
    return seen[1]


def test_traefik_accepts_a_route_to_its_gateway_counts_its_requests_and_is_scraped(
    env: Environment, kube: Kube, echo: str
) -> None:
    gateway = env.traefik()
    conditions = gateway_conditions(env.api)
    assert conditions["Accepted"]["status"] == "True" and conditions["Programmed"]["status"] == "True", conditions

    kube.custom.create_namespaced_custom_object(GATEWAY_GROUP, "v1", kube.namespace, "httproutes", _route(gateway))
    wait_for(
        lambda: _traefik_parent_conditions(kube),
        lambda c: c.get("Accepted") == "True" and c.get("ResolvedRefs") == "True",
        timeout=60,
        what=f"Traefik to report HTTPRoute {SERVICE} Accepted and ResolvedRefs\n{gateway.log_tail()}",
    )

    label = gateway.service_label(kube.namespace, echo, PORT)
    counted = _wait_served_and_counted(gateway, HOST, label)
    assert set(counted) == {"200"}, counted
    assert _get_through_traefik(gateway, "unknown.traefik.test") == 404

    instance = gateway.process.metrics_address
    env.prometheus.wait_for_series(f'up{{instance="{instance}"}} == 1', timeout=60)
    env.prometheus.wait_for_series(
        f'traefik_service_requests_total{{instance="{instance}", service="{label}", code="200"}} >= 1', timeout=60
    )


def test_traefik_routes_an_ingressroute_through_a_weighted_traefikservice(env: Environment, kube: Kube, echo: str) -> None:
    """The CRD provider (Flagger's ``traefik`` provider writes a TraefikService): requests are
    counted under the Kubernetes Service's name as the CRD provider spells it."""
    gateway = env.traefik()
    host = "crd.traefik.test"
    split = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": f"{echo}-split"},
        "spec": {"weighted": {"services": [{"name": echo, "port": PORT, "weight": 1}]}},
    }
    ingress = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": echo},
        "spec": {
            "entryPoints": ["web"],
            "routes": [{"match": f"Host(`{host}`)", "kind": "Rule",
                        "services": [{"name": f"{echo}-split", "kind": "TraefikService"}]}],
        },
    }  # fmt: skip
    kube.custom.create_namespaced_custom_object("traefik.io", "v1alpha1", kube.namespace, "traefikservices", split)
    kube.custom.create_namespaced_custom_object("traefik.io", "v1alpha1", kube.namespace, "ingressroutes", ingress)

    label = gateway.service_label(kube.namespace, echo, PORT, provider="kubernetescrd")
    counted = _wait_served_and_counted(gateway, host, label)
    assert set(counted) == {"200"}, (counted, gateway.requests_by_service())
