"""What of a Pod decides whether and how it is served: its address, its ports, its annotations."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from e2e.mesh.objects import ObjectError


@dataclass(frozen=True)
class PodAddress:
    namespace: str
    name: str
    uid: str
    #: "" while the Pod has no address yet.
    ip: str
    #: Every TCP ``containerPort`` its containers declare, sorted and without repeats.
    ports: tuple[int, ...]
    running: bool
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def served_in(self, network: ipaddress.IPv4Network) -> bool:
        """Whether this Pod gets servers: Running, with an address of the run's own range."""
        if not (self.running and self.ip and self.ports):
            return False
        try:
            return ipaddress.IPv4Address(self.ip) in network
        except ValueError:
            return False


def parse_pod_address(obj: Mapping[str, Any], api_version: str = "v1") -> PodAddress:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not meta.get("name"):
        raise ObjectError("Pod without metadata.name")
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
    assert isinstance(spec, Mapping) and isinstance(status, Mapping)
    return PodAddress(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta["name"]),
        uid=str(meta.get("uid") or ""),
        ip=str(status.get("podIP") or ""),
        ports=_tcp_ports(spec),
        running=status.get("phase") == "Running",
        labels=_strings(meta.get("labels")),
        annotations=_strings(meta.get("annotations")),
    )


def _tcp_ports(spec: Mapping[str, Any]) -> tuple[int, ...]:
    ports: set[int] = set()
    for container in spec.get("containers") or []:
        if not isinstance(container, Mapping):
            continue
        for port in container.get("ports") or []:
            if not isinstance(port, Mapping) or port.get("protocol", "TCP") != "TCP":
                continue
            number = port.get("containerPort")
            if isinstance(number, int) and 0 < number < 65536:
                ports.add(number)
    return tuple(sorted(ports))


def _strings(raw: object) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): str(v) for k, v in raw.items()}
