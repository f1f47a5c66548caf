"""Start Traefik as a child of the run (``e2e.processes.spawn``) and return once it answers ``/ping``.

Everything is configured by command-line flags, so the run's directory holds no Traefik config
file: the ``web`` entryPoint (the one the Gateway's listener binds to, by port), a ``metrics``
entryPoint serving ``/metrics`` and ``/ping`` on another port, and both Kubernetes providers
reading the run's API server through ``KUBECONFIG``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from e2e.processes import E2ESetupError, ManagedProcess, free_port, spawn, wait_until
from e2e.traefik.http import http_get

HOST = "127.0.0.1"
LOG_FILE = "traefik.log"
START_TIMEOUT = 60.0
WEB_ENTRYPOINT = "web"
#: Ping, metrics and Traefik's API on one loopback entryPoint. Its name is the one Traefik serves
#: its API on with ``api.insecure`` (read only, never exposed beyond 127.0.0.1): scenarios read
#: from the API which split Traefik has actually applied.
METRICS_ENTRYPOINT = "traefik"

#: Request-duration buckets in seconds. The scenarios' pods answer in milliseconds to a few hundred
#: (latency faults), and a p99 bound is judged from these buckets, so they are dense from 5 ms to
#: 1 s and stop at 10 s; Traefik's default (0.1, 0.3, 1.2, 5) cannot tell 20 ms from 90 ms.
DURATION_BUCKETS: Sequence[float] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: How long Traefik lets in-flight requests finish on SIGTERM; its default (10 s) would make every
#: environment stop wait that long while load is still running.
GRACE_TIMEOUT = "1s"


class TraefikStartError(E2ESetupError):
    """Traefik exited or did not answer ``/ping`` in time; the message quotes its log."""


@dataclass
class TraefikProcess:
    """One running Traefik: its process and the two ports it listens on."""

    process: ManagedProcess
    web_port: int
    metrics_port: int
    host: str = HOST

    @property
    def web_url(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def metrics_address(self) -> str:
        """``host:port`` of ``/metrics``, as a Prometheus static scrape target."""
        return f"{self.host}:{self.metrics_port}"

    @property
    def ping_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/ping"

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def alive(self) -> bool:
        return self.process.alive()

    def ready(self) -> bool:
        status, _ = http_get(self.ping_url)
        return status == 200

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines)

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) Traefik. Idempotent."""
        self.process.stop()


def traefik_argv(binary: Path, *, web_port: int, metrics_port: int, host: str = HOST) -> list[str]:
    """Traefik's command line: entryPoints, Prometheus metrics, ping, both Kubernetes providers."""
    buckets = ",".join(f"{b:g}" for b in DURATION_BUCKETS)
    return [
        str(binary),
        # No calls out of the machine: no version check, no anonymous usage report.
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
        # Every request with its router, service, backend address and status: what a scenario's
        # failure is read from.
        "--accesslog=true",
        "--log.noColor=true",
        f"--entryPoints.{WEB_ENTRYPOINT}.address={host}:{web_port}",
        f"--entryPoints.{WEB_ENTRYPOINT}.transport.lifeCycle.graceTimeOut={GRACE_TIMEOUT}",
        f"--entryPoints.{METRICS_ENTRYPOINT}.address={host}:{metrics_port}",
        f"--entryPoints.{METRICS_ENTRYPOINT}.transport.lifeCycle.graceTimeOut={GRACE_TIMEOUT}",
        # The internal services on the metrics entryPoint, so Traefik opens no :8080 of its own.
        "--api=true",
        "--api.insecure=true",
        "--api.dashboard=false",
        "--ping=true",
        f"--ping.entryPoint={METRICS_ENTRYPOINT}",
        "--metrics.prometheus=true",
        f"--metrics.prometheus.entryPoint={METRICS_ENTRYPOINT}",
        "--metrics.prometheus.addEntryPointsLabels=true",
        "--metrics.prometheus.addServicesLabels=true",
        "--metrics.prometheus.addRoutersLabels=true",
        f"--metrics.prometheus.buckets={buckets}",
        "--providers.kubernetesgateway=true",
        # The Gateway's status shows where its listener really is.
        f"--providers.kubernetesgateway.statusAddress.ip={host}",
        "--providers.kubernetescrd=true",
        # A TraefikService in the app's namespace may be referenced from an IngressRoute elsewhere.
        "--providers.kubernetescrd.allowCrossNamespace=true",
    ]


def start_traefik(
    workdir: Path,
    kubeconfig: Path,
    *,
    binary: Path,
    web_port: int | None = None,
    metrics_port: int | None = None,
    timeout: float = START_TIMEOUT,
) -> TraefikProcess:
    """Start Traefik against ``kubeconfig``; its log is ``workdir/traefik.log``.

    Traefik answers ``/ping`` only once its providers have synced their caches, so this returns
    when it has read the cluster. The CRDs must be installed first: the Gateway API provider waits
    for every watched kind (see :mod:`e2e.traefik.cluster`).
    """
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    web = web_port or free_port()
    metrics = metrics_port or free_port()
    argv = traefik_argv(binary, web_port=web, metrics_port=metrics)
    process = spawn("traefik", argv, log_path=workdir / LOG_FILE, env={"KUBECONFIG": str(kubeconfig)}, cwd=workdir)
    traefik = TraefikProcess(process=process, web_port=web, metrics_port=metrics)
    try:
        wait_until(traefik.ready, timeout=timeout, what=f"Traefik to answer {traefik.ping_url}", process=process)
    except E2ESetupError as exc:
        process.stop()
        raise TraefikStartError(str(exc)) from exc
    except BaseException:
        process.stop()
        raise
    return traefik
