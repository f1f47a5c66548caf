"""Start the mesh as its own process (``python -m e2e.mesh``) and hand back its addresses.

The process goes through :func:`e2e.processes.spawn`: its own process group, and unless
``detach=True`` it is SIGKILLed by the kernel when the thread that started it dies, so an
interrupted test run leaves no mesh behind. ``start_mesh`` returns once ``/healthz`` answers
200, i.e. once every watched resource has been listed (or found not served).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from e2e.mesh.client import MeshClient
from e2e.mesh.metrics import FLAVOURS
from e2e.processes import E2ESetupError, ManagedProcess, free_port, spawn, wait_until

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STATE_FILE = "mesh.json"
LOG_FILE = "mesh.log"
START_TIMEOUT = 30.0


@dataclass
class MeshProcess:
    process: ManagedProcess
    workdir: Path
    metrics_flavour: str
    proxy_port: int
    control_port: int
    metrics_port: int
    host: str = HOST
    client: MeshClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = MeshClient(self.control_url, proxy_url=self.proxy_url)

    @property
    def proxy_url(self) -> str:
        return f"http://{self.host}:{self.proxy_port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    @property
    def metrics_url(self) -> str:
        """The full URL of the exposition: ``http://127.0.0.1:PORT/metrics``."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def metrics_address(self) -> str:
        """``host:port`` of the metrics endpoint, as a Prometheus static scrape target."""
        return f"{self.host}:{self.metrics_port}"

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def alive(self) -> bool:
        return self.process.alive()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    def wait_for_canary_share(
        self, namespace: str, service: str, backend: str, share: float, timeout: float = 10.0
    ) -> None:
        """Wait until the proxy routes ``share`` (0..1) of ``service``'s requests to ``backend``."""
        self.client.wait_for_share(namespace, service, backend, share, timeout)

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) the mesh. Idempotent."""
        self.process.stop()


def start_mesh(
    workdir: Path,
    kubeconfig: Path,
    *,
    metrics_flavour: str = "linkerd",
    detach: bool = False,
    proxy_port: int | None = None,
    control_port: int | None = None,
    metrics_port: int | None = None,
    seed: int | None = None,
    timeout: float = START_TIMEOUT,
) -> MeshProcess:
    """Start the mesh against ``kubeconfig``; its log is ``workdir/mesh.log``.

    Raises :class:`E2ESetupError` (quoting the log) if it exits or is not healthy in time.
    """
    if metrics_flavour not in FLAVOURS:
        raise E2ESetupError(f"unknown metrics flavour {metrics_flavour!r}; choose one of {', '.join(FLAVOURS)}")
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {
        "proxy": proxy_port or free_port(),
        "control": control_port or free_port(),
        "metrics": metrics_port or free_port(),
    }
    argv = [
        sys.executable, "-m", "e2e.mesh",
        "--kubeconfig", str(kubeconfig),
        "--metrics-flavour", metrics_flavour,
        "--proxy-port", str(ports["proxy"]),
        "--control-port", str(ports["control"]),
        "--metrics-port", str(ports["metrics"]),
    ]  # fmt: skip
    if seed is not None:
        argv += ["--seed", str(seed)]
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    process = spawn(
        "mesh",
        argv,
        log_path=workdir / LOG_FILE,
        env={"PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"},
        cwd=REPO,
        die_with_parent=not detach,
    )
    mesh = MeshProcess(
        process=process,
        workdir=workdir,
        metrics_flavour=metrics_flavour,
        proxy_port=ports["proxy"],
        control_port=ports["control"],
        metrics_port=ports["metrics"],
    )
    try:
        wait_until(mesh.client.healthy, timeout=timeout, what="the mesh's initial lists (GET /healthz)", process=process)
    except BaseException:
        process.stop()
        raise
    state = {
        "pid": process.pid,
        "metricsFlavour": metrics_flavour,
        "proxyUrl": mesh.proxy_url,
        "controlUrl": mesh.control_url,
        "metricsUrl": mesh.metrics_url,
        "log": str(process.log_path),
    }
    (workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    return mesh
