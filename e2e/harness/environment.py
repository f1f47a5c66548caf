"""Everything a scenario runs against: a cluster, the mesh CRDs, the data plane and Prometheus.

By default the cluster is the local control plane (``e2e/cluster``), started fresh for the run.
With ``E2E_KUBECONFIG`` set, the same suite runs against that cluster instead (kind, k3d, a real
one): the project's CRDs and the chosen mesh flavour's CRDs are installed there, and the
simulated data plane and Prometheus still run on this machine, talking to it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client, config

from e2e.cluster import ControlPlane, ensure_binaries, install_manifests
from e2e.cluster.binaries import Binaries, expected_binaries
from e2e.crds import FLAVOURS, HTTPROUTE_CRD
from e2e.crds.install import switch_flavour
from e2e.harness.audit import AuditLog
from e2e.harness.chart_rbac import ChartIdentity, install_chart_identity, metrics_server_kubeconfig
from e2e.harness.metrics_server import SmiMetrics, start_smi_metrics
from e2e.mesh.launcher import MeshProcess, start_mesh
from e2e.podnet.launcher import PodNetwork, start_pod_network
from e2e.prometheus import Prometheus
from e2e.processes import E2ESetupError
from e2e.traefik.cluster import (
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    apply_gateway,
    install_traefik_crds,
    standard_httproute,
    wait_gateway_programmed,
    wait_routes_watched,
)
from e2e.traefik.gateway import TraefikGateway
from e2e.traefik.launcher import start_traefik

REPO = Path(__file__).resolve().parents[2]
PROJECT_CRDS = REPO / "crds"

SMI_NEEDS_LOCAL_CLUSTER = (
    "the SMI metrics server runs on this machine and is reached by the API server at an address of "
    "this machine's network; a cluster given by E2E_KUBECONFIG cannot use it as the endpoint of its "
    "APIService, so the SMI Traffic Metrics scenarios run only on the local control plane"
)

AUDIT_NEEDS_LOCAL_CLUSTER = (
    "the proof reads the kube-apiserver's audit log, which only the local control plane writes "
    "here; a cluster given by E2E_KUBECONFIG keeps its audit log (if any) out of this machine's reach"
)

POD_NETWORK_NEEDS_LOCAL_CLUSTER = (
    "the pod servers listen at the pod IPs of the local control plane's own range, routed into a network "
    "namespace of this run; a cluster given by E2E_KUBECONFIG hands out addresses of its own network, which "
    "this machine may neither claim nor route"
)

#: The harness's own requests say so, so the audit log tells them from other admin requests (the
#: controller's have credentials of their own: :meth:`Environment.controller_kubeconfig`).
HARNESS_USER_AGENT = "canary-e2e-harness"


class ExternalClusterError(E2ESetupError):
    """What the environment was asked for needs the local control plane, not ``E2E_KUBECONFIG``."""


@dataclass
class Environment:
    workdir: Path
    kubeconfig: Path
    api: client.ApiClient
    prometheus: Prometheus
    mesh: MeshProcess
    flavour: str
    control_plane: ControlPlane | None = None
    kubectl: Path | None = None
    """The kubectl built with the control plane (``build.sh``); with ``E2E_KUBECONFIG``, that one if
    built, else the one on PATH; None when there is neither."""
    timings: dict[str, float] = field(default_factory=dict)
    smi: SmiMetrics | None = None
    """The SMI metrics server once :meth:`smi_metrics` started it; None before (and if never)."""
    pods: PodNetwork | None = None
    """The pod servers once :meth:`pod_network` started them; None before (and if never)."""
    cleanup: contextlib.ExitStack | None = field(default=None, repr=False)
    """Where parts started on demand register their stop; :func:`environment` unwinds it."""
    binaries: Binaries | None = None
    """Where the built binaries are (Traefik's included); None until :meth:`traefik` looks them up."""
    gateway: TraefikGateway | None = None
    """Traefik once :meth:`traefik` started it; None before (and if never)."""
    standard_httproute: bool = False
    """Whether the cluster's HTTPRoute CRD is the Gateway API standard one (set by :meth:`traefik`)
    rather than the simulated ``gatewayapi`` flavour's hand-written copy."""
    chart_identity: ChartIdentity | None = None
    """The chart's ServiceAccount once :meth:`controller_kubeconfig` applied its RBAC; None before."""

    def controller_kubeconfig(self, namespace: str) -> Path:
        """The kubeconfig a controller for ``namespace`` runs with: a token of the chart's
        ServiceAccount, bound to the chart's RBAC (:mod:`e2e.harness.chart_rbac`), so every
        scenario proves the chart grants what the controller does. Applied on first use."""
        if self.chart_identity is None:
            mark = time.monotonic()
            self.chart_identity = install_chart_identity(self.api, self.kubeconfig, self.workdir / "chart")
            self.timings["chart_rbac"] = time.monotonic() - mark
        self.chart_identity.grant_lease(self.api, namespace)
        return self.chart_identity.kubeconfig

    @property
    def controller_user(self) -> str:
        """The user the API server sees on the controller's requests (after :meth:`controller_kubeconfig`)."""
        if self.chart_identity is None:
            raise E2ESetupError("no controller has been given credentials yet (controller_kubeconfig)")
        return self.chart_identity.user

    def smi_metrics(self) -> SmiMetrics:
        """``canary metrics-server`` registered as ``v1alpha1.metrics.smi-spec.io``, started on
        first use (scenarios that do not need it do not pay for it) and stopped with the environment.

        Raises :class:`ExternalClusterError` with ``E2E_KUBECONFIG``: see
        :data:`SMI_NEEDS_LOCAL_CLUSTER`.
        """
        if self.smi is None:
            if self.control_plane is None:
                raise ExternalClusterError(SMI_NEEDS_LOCAL_CLUSTER)
            mark = time.monotonic()
            smi = start_smi_metrics(
                self.workdir / "metrics-server",
                api=self.api,
                # The chart's metrics-server ServiceAccount and RBAC, as for the controller.
                kubeconfig=metrics_server_kubeconfig(self.api, self.kubeconfig, self.workdir / "chart"),
                prometheus_url=self.prometheus.url,
                requestheader_ca=self.control_plane.pki.front_proxy_ca.cert,
            )
            self.smi = smi
            if self.cleanup is not None:
                self.cleanup.callback(smi.stop)
            self.timings["smi_metrics"] = time.monotonic() - mark
        return self.smi

    def traefik(self) -> TraefikGateway:
        """A real Traefik serving Gateway ``traefik-gateway/traefik`` (GatewayClass ``traefik``) on
        its ``web`` entryPoint, with both Kubernetes providers reading this cluster; started on first
        use, scraped by :attr:`prometheus` from then on, and stopped with the environment.

        Every call (not only the first) makes the cluster serve the ``gatewayapi`` flavour with the
        Gateway API *standard* HTTPRoute CRD: a scenario that ran in between may have switched to an
        SMI flavour, which deletes HTTPRoute. So a Traefik scenario calls this after any
        :meth:`use_flavour`; ``use_flavour("gatewayapi")`` afterwards is a no-op and keeps it.
        """
        crds = self._binaries().traefik_crds
        if not self.standard_httproute or self.flavour != "gatewayapi":
            switch_flavour(self.api, "gatewayapi", replacements={HTTPROUTE_CRD: standard_httproute(crds)})
            self.flavour = "gatewayapi"
            self.standard_httproute = True
            if self.gateway is not None:
                # Traefik ran while HTTPRoute was gone: its watch may be in back-off.
                wait_routes_watched(self.api)
        if self.gateway is None:
            mark = time.monotonic()
            install_traefik_crds(self.api, crds)
            process = start_traefik(self.workdir / "traefik", self.kubeconfig, binary=self._binaries().traefik)
            if self.cleanup is not None:
                self.cleanup.callback(process.stop)
            try:
                apply_gateway(self.api, self.workdir / "traefik", process.web_port)
                wait_gateway_programmed(self.api)
                # Prometheus learns the new target by a config reload (its targets are static).
                self.prometheus.set_targets([self.mesh.metrics_address, process.metrics_address])
            except BaseException:
                process.stop()
                raise
            self.gateway = TraefikGateway(
                process=process,
                gateway_namespace=GATEWAY_NAMESPACE,
                gateway_name=GATEWAY_NAME,
                web_url=process.web_url,
                metrics_url=process.metrics_url,
            )
            self.timings["traefik"] = time.monotonic() - mark
        return self.gateway

    def _binaries(self) -> Binaries:
        if self.binaries is None:
            # With E2E_KUBECONFIG nothing was built for the control plane; Traefik is built by
            # ``build.sh --data-plane-only`` too, so only it has to be there.
            found = expected_binaries()
            if found.traefik_crds.present() and found.traefik.is_file():
                self.binaries = found
            else:
                raise E2ESetupError(
                    f"Traefik is not built ({found.traefik}); run `bash e2e/cluster/build.sh --data-plane-only`"
                )
        return self.binaries

    def pod_network(self) -> PodNetwork:
        """Real HTTP servers at the Pods' IPs (:mod:`e2e.podnet`), started on first use and stopped
        with the environment.

        Raises :class:`ExternalClusterError` with ``E2E_KUBECONFIG``: see
        :data:`POD_NETWORK_NEEDS_LOCAL_CLUSTER`.
        """
        if self.pods is None:
            if self.control_plane is None:
                raise ExternalClusterError(POD_NETWORK_NEEDS_LOCAL_CLUSTER)
            mark = time.monotonic()
            pods = start_pod_network(self.workdir / "podnet", self.kubeconfig, self.control_plane.pod_cidr)
            self.pods = pods
            if self.cleanup is not None:
                self.cleanup.callback(pods.stop)
            self.timings["pod_network"] = time.monotonic() - mark
        return self.pods

    def use_flavour(self, name: str) -> None:
        """Serve the mesh CRDs of flavour ``name`` (a no-op when they already are, whichever
        HTTPRoute CRD :meth:`traefik` left)."""
        if name != self.flavour:
            switch_flavour(self.api, name)
            self.flavour = name
            self.standard_httproute = False

    @property
    def audit(self) -> AuditLog | None:
        """The API server's audit log of writes; None with ``E2E_KUBECONFIG`` (see
        :data:`AUDIT_NEEDS_LOCAL_CLUSTER`)."""
        if self.control_plane is None or self.control_plane.audit_log is None:
            return None
        return AuditLog(self.control_plane.audit_log)

    @property
    def route_provider(self) -> str:
        """The router the controller picks on this flavour by discovery (newest served SMI version)."""
        return provider_for(self.flavour)

    def stop(self) -> None:
        for part in (self.gateway, self.smi, self.pods, self.mesh, self.prometheus, self.control_plane):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()


def provider_for(flavour: str) -> str:
    f = FLAVOURS[flavour]
    return "gatewayapi" if not f.trafficsplit_versions else f"smi:{f.trafficsplit_versions[-1]}"


def _kubectl_for_external_cluster() -> Path | None:
    # build.sh --data-plane-only builds no Kubernetes binary, so a kubectl may not be cached.
    built = expected_binaries().kubectl
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which("kubectl")
    return Path(found) if found else None


def _external_kubeconfig() -> Path | None:
    value = os.environ.get("E2E_KUBECONFIG", "").strip()
    return Path(value).expanduser() if value else None


@contextlib.contextmanager
def environment(workdir: Path, *, flavour: str = "linkerd", metrics_flavour: str = "linkerd") -> Iterator[Environment]:
    """Start (or attach to) a cluster and the data plane; stop what was started on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    control_plane: ControlPlane | None = None
    kubectl: Path | None = None
    external = _external_kubeconfig()
    started = time.monotonic()
    stack = contextlib.ExitStack()
    binaries: Binaries | None = None
    with stack:
        if external is None:
            binaries = ensure_binaries()
            timings["binaries"] = time.monotonic() - started
            mark = time.monotonic()
            kubectl = binaries.kubectl
            control_plane = ControlPlane.start(workdir / "cluster", binaries=binaries)
            stack.callback(control_plane.stop)
            timings["control_plane"] = time.monotonic() - mark
            kubeconfig = control_plane.kubeconfig
            api = control_plane.api_client()
        else:
            kubeconfig = external
            kubectl = _kubectl_for_external_cluster()
            api = config.new_client_from_config(config_file=str(external))  # type: ignore[no-untyped-call]
        api.user_agent = HARNESS_USER_AGENT
        mark = time.monotonic()
        install_manifests(api, [PROJECT_CRDS])
        switch_flavour(api, flavour)
        timings["crds"] = time.monotonic() - mark
        mark = time.monotonic()
        mesh = start_mesh(workdir / "mesh", kubeconfig, metrics_flavour=metrics_flavour)
        stack.callback(mesh.stop)
        prometheus = Prometheus.start(workdir / "prometheus", scrape_targets=[mesh.metrics_address])
        stack.callback(prometheus.stop)
        timings["data_plane"] = time.monotonic() - mark
        timings["total"] = time.monotonic() - started
        yield Environment(
            workdir=workdir, kubeconfig=kubeconfig, api=api, prometheus=prometheus, mesh=mesh,
            flavour=flavour, control_plane=control_plane, kubectl=kubectl, timings=timings, cleanup=stack,
            binaries=binaries,
        )
