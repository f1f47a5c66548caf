"""Which Pods the pod network serves, and on which ports."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from e2e.mesh.objects import ObjectError
from e2e.podnet.pods import parse_pod_address

RANGE = ipaddress.IPv4Network("10.244.16.0/20")


def pod(ip: str = "10.244.16.7", phase: str = "Running", ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "labels": {"app": "web"},
                     "annotations": {"sim.canary.dev/version": "2"}},
        "spec": {"containers": [
            {"name": "app", "ports": ports if ports is not None else [{"containerPort": 8080, "protocol": "TCP"}]},
            {"name": "sidecar", "ports": [{"containerPort": 9090}, {"containerPort": 8080}]},
        ]},
        "status": {"phase": phase, "podIP": ip},
    }


def test_a_running_pod_of_the_range_is_served_on_every_tcp_port() -> None:
    address = parse_pod_address(pod())
    assert (address.ref, address.ip, address.ports) == ("shop/web-1", "10.244.16.7", (8080, 9090))
    assert address.labels == {"app": "web"} and address.annotations["sim.canary.dev/version"] == "2"
    assert address.served_in(RANGE)


@pytest.mark.parametrize(
    "obj",
    [
        pod(ip="10.244.0.7"),  # another run's range
        pod(ip=""),  # no address yet
        pod(phase="Pending"),
        pod(phase="Succeeded"),
        pod(ip="not-an-ip"),
    ],
    ids=["other-range", "no-ip", "pending", "succeeded", "bad-ip"],
)
def test_other_pods_are_not_served(obj: dict[str, Any]) -> None:
    assert not parse_pod_address(obj).served_in(RANGE)


def test_udp_ports_are_not_served() -> None:
    obj = pod(ports=[{"containerPort": 53, "protocol": "UDP"}])
    obj["spec"]["containers"].pop()
    address = parse_pod_address(obj)
    assert address.ports == () and not address.served_in(RANGE)


def test_a_pod_without_a_name_is_refused() -> None:
    with pytest.raises(ObjectError):
        parse_pod_address({"metadata": {}})
