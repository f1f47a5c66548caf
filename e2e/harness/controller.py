"""The controller under test, run as a real process (`python -m canary run`) against the API server.

One controller per scenario, watching only the scenario's namespace and holding its leader Lease
there: scenarios cannot disturb each other, and a scenario can SIGKILL its controller and start
another one, as a crash and a restart by the Deployment would.
"""

from __future__ import annotations

import socket
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.processes import ManagedProcess, free_port, spawn, wait_until


@dataclass
class ControllerOptions:
    kubeconfig: Path
    namespace: str
    prometheus_url: str
    mesh: str = "linkerd"
    default_provider: str | None = None
    metrics_source: str | None = None


def _argv(opts: ControllerOptions, metrics_port: int) -> list[str]:
    argv = [
        sys.executable, "-m", "canary", "run",
        "--kubeconfig", str(opts.kubeconfig),
        "--namespace", opts.namespace,
        "--prometheus-address", opts.prometheus_url,
        "--mesh", opts.mesh,
        "--metrics-port", str(metrics_port),
        "--lease-namespace", opts.namespace,
        "--log-level", "debug",
    ]
    if opts.default_provider:
        argv += ["--default-provider", opts.default_provider]
    if opts.metrics_source:
        argv += ["--metrics-source", opts.metrics_source]
    return argv


@dataclass
class Controller:
    options: ControllerOptions
    log_dir: Path
    api: client.ApiClient
    process: ManagedProcess | None = None
    starts: int = 0
    metrics_port: int = 0

    def start(self) -> Controller:
        self.starts += 1
        self.metrics_port = free_port()
        log = self.log_dir / f"controller-{self.options.namespace}-{self.starts}.log"
        self.process = spawn("controller", _argv(self.options, self.metrics_port), log_path=log)
        # A restarted controller waits for its dead predecessor's Lease to expire (15 s), as a
        # restarted Pod would; then /readyz turns true once kopf has listed every watched resource.
        wait_until(self._leading, timeout=60, what="the controller to acquire its Lease",
                   process=self.process, interval=0.2)
        wait_until(self._ready, timeout=60, what="the controller to finish its initial lists",
                   process=self.process, interval=0.2)
        return self

    @property
    def identity(self) -> str:
        # canary.kube.leader.default_identity: hostname and pid of the controller process.
        assert self.process is not None
        return f"{socket.gethostname()}_{self.process.pid}"

    def _leading(self) -> bool:
        try:
            lease = client.CoordinationV1Api(self.api).read_namespaced_lease("canary-controller", self.options.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return bool(lease.spec and lease.spec.holder_identity == self.identity)

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2) as resp:
            return int(resp.status) == 200

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a node loss would."""
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines) if self.process else "(never started)"
