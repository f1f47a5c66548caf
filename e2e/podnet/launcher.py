"""Start the pod network for a run: its namespace and route, and ``python -m e2e.podnet``.

:func:`start_pod_network` deletes what dead runs left (:func:`e2e.netns.remove_stale`), makes a
namespace with a veth pair (:func:`e2e.netns.create_net_host`), routes the control plane's own pod
range into it, and starts the server process through :func:`e2e.processes.spawn` (so it dies with
the run). :meth:`PodNetwork.stop` stops the process and deletes the namespace, which takes the
veth pair and both routes with it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.netns import NetHost, create_net_host, delete_net_host, remove_stale, route_range_into
from e2e.processes import E2ESetupError, ManagedProcess, free_port, spawn, wait_until

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
LOG_FILE = "podnet.log"
START_TIMEOUT = 30.0


@dataclass
class PodNetwork:
    process: ManagedProcess
    host: NetHost
    cidr: ipaddress.IPv4Network
    control_port: int

    @property
    def control_url(self) -> str:
        return f"http://{HOST}:{self.control_port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.control_url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def servers(self) -> list[dict[str, Any]]:
        """Every served ``podIP:port`` with its Pod, labels, version, behaviour and answer counts."""
        try:
            with urllib.request.urlopen(f"{self.control_url}/served", timeout=5) as response:
                body = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise E2ESetupError(f"the pod network's control endpoint did not answer: {exc}; log:\n"
                                f"{self.log_tail()}") from exc
        servers = body.get("servers") if isinstance(body, dict) else None
        return [s for s in servers or [] if isinstance(s, dict)]

    def served(self) -> dict[str, str]:
        """``podIP:port`` -> ``namespace/pod`` of everything served now."""
        return {f"{s['address']}:{s['port']}": f"{s['namespace']}/{s['name']}" for s in self.servers()}

    def wait_serving(self, namespace: str, selector: Mapping[str, str], count: int, timeout: float = 60) -> list[str]:
        """Wait until exactly ``count`` Pods of ``namespace`` whose labels include ``selector`` are
        served at their pod IPs; their IPs, sorted."""
        found: list[str] = []

        def serving() -> bool:
            nonlocal found
            addresses = {
                s["address"] for s in self.servers()
                if s.get("namespace") == namespace
                and all((s.get("labels") or {}).get(k) == v for k, v in selector.items())
            }
            found = sorted(addresses, key=ipaddress.IPv4Address)
            return len(found) == count

        what = f"{count} pods of {namespace} with labels {dict(selector)} to be served at their pod IPs"
        try:
            wait_until(serving, timeout=timeout, what=what, process=self.process)
        except E2ESetupError as exc:
            raise E2ESetupError(f"{exc}\nmatching pods served at the end: {found}; log:\n{self.log_tail()}") from exc
        return found

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines)

    def stop(self) -> None:
        """Stop the process and delete the namespace (with its links and routes). Idempotent."""
        self.process.stop()
        delete_net_host(self.host)


def start_pod_network(
    workdir: Path, kubeconfig: Path, cidr: ipaddress.IPv4Network, *, timeout: float = START_TIMEOUT
) -> PodNetwork:
    """Serve the Pods whose IPs are in ``cidr`` (the control plane's own range) at those IPs.

    Needs root, as :mod:`e2e.netns` does. Raises :class:`E2ESetupError` (quoting the log) if the
    process exits or does not list the Pods in time; whatever was created is removed again.
    """
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    remove_stale()
    host = create_net_host()
    try:
        route_range_into(host, cidr)
        port = free_port()
        python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        process = spawn(
            "podnet",
            [sys.executable, "-m", "e2e.podnet", "--kubeconfig", str(kubeconfig), "--netns", host.netns,
             "--cidr", str(cidr), "--control-port", str(port)],
            log_path=workdir / LOG_FILE,
            env={"PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"},
            cwd=REPO,
        )
    except BaseException:
        delete_net_host(host)
        raise
    network = PodNetwork(process=process, host=host, cidr=cidr, control_port=port)
    try:
        wait_until(network.healthy, timeout=timeout, what="the pod network's initial list of Pods (GET /healthz)",
                   process=process)
    except BaseException:
        network.stop()
        raise
    return network
