"""The app's Pods are real HTTP servers at the pod IPs the API server publishes.

What a real gateway will do is done here by hand: read a Service's EndpointSlices and send HTTP to
the addresses in them from this host's root network namespace. The answers must come from the
Pod at that address and follow its pod-template annotations; a replaced Pod's address must stop
answering.
"""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.podnet.launcher import PodNetwork
from e2e.podnet.servers import POD_HEADER, VERSION_HEADER
from e2e.traefik.load import Load

NAME = "web"


@pytest.fixture
def network(env: Environment) -> PodNetwork:
    if env.control_plane is None:
        pytest.skip("the pod network needs the local control plane")
    return env.pod_network()


def get(url: str) -> tuple[int, dict[str, str], str]:
    """Status, headers and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def served_by_version(network: PodNetwork, namespace: str) -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for server in network.servers():
        if server["namespace"] == namespace:
            versions.setdefault(server["version"], set()).add(server["address"])
    return versions


def slice_addresses(kube: Kube, service: str) -> tuple[set[str], set[int]]:
    """Ready endpoint addresses and the ports of the Service's EndpointSlices."""
    discovery: Any = client.DiscoveryV1Api(kube.api)
    slices = discovery.list_namespaced_endpoint_slice(
        kube.namespace, label_selector=f"kubernetes.io/service-name={service}").items
    addresses = {address for s in slices for e in s.endpoints or []
                 if e.conditions is not None and e.conditions.ready for address in e.addresses}
    ports = {p.port for s in slices for p in s.ports or []}
    return addresses, ports


@pytest.fixture
def web(kube: Kube) -> Iterator[str]:
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("v1")))
    kube.core.create_namespaced_service(kube.namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME},
        "spec": {"selector": {"app": NAME}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    })
    yield NAME


def test_pods_answer_at_their_ips_as_their_annotations_say(
    env: Environment, kube: Kube, network: PodNetwork, web: str
) -> None:
    assert env.control_plane is not None
    ips = network.wait_serving(kube.namespace, {"app": web}, 2)

    # The addresses kwok gave the Pods, from this run's own range.
    pods = {pod["status"]["podIP"]: pod["metadata"]["name"] for pod in kube.pods(f"app={web}")}
    assert sorted(pods, key=ipaddress.IPv4Address) == ips  # numeric order, as wait_serving gives them
    assert all(ipaddress.IPv4Address(ip) in env.control_plane.pod_cidr for ip in ips)

    # What a gateway resolves: the EndpointSlices list exactly the served addresses and port.
    addresses, ports = wait_for(lambda: slice_addresses(kube, web), lambda found: found[0] == set(ips),
                                timeout=60, what=f"the EndpointSlices of {web} to list {ips}")
    assert ports == {app.PORT}
    served = network.served()
    assert {f"{ip}:{app.PORT}" for ip in addresses} <= set(served)

    for ip in ips:
        status, headers, body = get(f"http://{ip}:{app.PORT}/anything")
        assert status == 200, body
        assert headers[POD_HEADER] == f"{kube.namespace}/{pods[ip]}"
        assert headers[VERSION_HEADER] == "v1"
        assert served[f"{ip}:{app.PORT}"] == f"{kube.namespace}/{pods[ip]}"

    # A faulty version: every answer of the new Pods fails with the status the annotations name.
    kube.patch_template_annotations(web, {**app.behaviour("v2", error_rate=1.0), "sim.canary.dev/status": "503"})
    by_version = wait_for(lambda: served_by_version(network, kube.namespace),
                          lambda found: set(found) == {"v2"} and len(found["v2"]) == 2,
                          timeout=60, what="only the two v2 pods to be served")
    for ip in by_version["v2"]:
        status, headers, _ = get(f"http://{ip}:{app.PORT}/")
        assert (status, headers[VERSION_HEADER]) == (503, "v2")
    # The replaced Pods' addresses refuse connections (unless kwok already gave one to a new Pod).
    for ip in set(ips) - by_version["v2"]:
        with pytest.raises(urllib.error.URLError) as refused:
            get(f"http://{ip}:{app.PORT}/")
        assert isinstance(refused.value.reason, ConnectionRefusedError), refused.value
    wait_for(lambda: slice_addresses(kube, web)[0], lambda found: found == by_version["v2"],
             timeout=60, what="the EndpointSlices to list the v2 pods only")


def test_load_reaches_one_pod_at_its_ip(kube: Kube, network: PodNetwork, web: str) -> None:
    first = network.wait_serving(kube.namespace, {"app": web}, 2)[0]
    pod = network.served()[f"{first}:{app.PORT}"]
    with Load(f"http://{first}:{app.PORT}", host=f"{web}.example", rps=100, cookies={"tester": "yes"}) as load:
        stats = wait_for(load.snapshot, lambda s: s.answered + sum(s.errors.values()) >= 200,
                         timeout=60, what="200 requests answered")
    assert stats.errors == {}, stats.errors
    assert set(stats.by_status) == {200}
    assert stats.by_pod == {pod: stats.answered}
    assert stats.share("v1") == 1.0
    assert len(stats.latencies_ms) == stats.answered
