"""``canary metrics-server`` as an aggregated API of the local control plane, as in a cluster.

What :func:`start_smi_metrics` sets up, in this order (and tears down in reverse):

1. A test host (:mod:`e2e.netns`): a non-loopback address of this machine's root network
   namespace, because the API server refuses loopback endpoints and, with no kube-proxy, dials
   the endpoint address itself.
2. A serving certificate from a CA of the server's own, for ``canary-metrics.canary-system.svc``
   (the name the API server checks when it proxies) and for the test host's address (for the
   tests that talk to the server directly).
3. The server process (``python -m canary metrics-server``) bound to that address. It trusts
   the control plane's front-proxy CA for the requestheader flow, reads the cluster with the
   kubeconfig it is given (the environment gives it the chart's metrics-server ServiceAccount:
   ``e2e/harness/chart_rbac.py``) and queries the session's Prometheus on 127.0.0.1.
4. In the cluster: Namespace ``canary-system``, a Service without selector, an EndpointSlice
   that points at the server (the API server's aggregator resolves endpoints through
   EndpointSlices in 1.34), and the APIService ``v1alpha1.metrics.smi-spec.io`` whose
   ``caBundle`` is the server's CA. It returns once the APIService is ``Available`` and
   ``/apis/metrics.smi-spec.io/v1alpha1`` answers through the API server.

Every request the tests make "through the API server" goes out with the admin client, exactly as
``kubectl get --raw`` does.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.cluster.pki import FRONT_PROXY_CLIENT_NAME, Authority, KeyPair
from e2e.netns import NetHost, create_net_host, delete_net_host, describe, remove_stale
from e2e.processes import E2ESetupError, ManagedProcess, spawn, wait_until

REPO = Path(__file__).resolve().parents[2]
DEFAULT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "canary", "metrics-server")

GROUP = "metrics.smi-spec.io"
VERSION = "v1alpha1"
API_PATH = f"/apis/{GROUP}/{VERSION}"
APISERVICE = f"{VERSION}.{GROUP}"
NAMESPACE = "canary-system"
SERVICE = "canary-metrics"
SERVICE_PORT = 443
PORT_NAME = "https"
FIELD_MANAGER = "canary-e2e"

START_TIMEOUT = 30.0
AVAILABLE_TIMEOUT = 60.0
_REQUEST_TIMEOUT = 15.0


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and body, whichever the status."""

    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self, limit: int = 500) -> str:
        return self.body.decode(errors="replace")[:limit]


# -- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingCerts:
    """The server's own CA (the APIService's ``caBundle``) and its serving certificate."""

    ca: KeyPair
    serving: KeyPair

    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.cert.read_bytes()).decode()


def service_dns_names(namespace: str = NAMESPACE, service: str = SERVICE) -> list[str]:
    # The API server proxies with ServerName "<service>.<namespace>.svc"; the longer names are
    # what in-cluster clients would use.
    return [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local", f"{service}.{namespace}"]


def make_serving_certs(directory: Path, *, address: str, namespace: str = NAMESPACE, service: str = SERVICE) -> ServingCerts:
    """A fresh CA and a serving certificate for the Service's DNS names and ``address``."""
    authority = Authority.create("canary-metrics-server-ca")
    directory.mkdir(parents=True, exist_ok=True)
    ca = authority.write(directory, "metrics-server-ca")
    serving = authority.issue_pair(
        directory,
        "metrics-server",
        f"{service}.{namespace}.svc",
        server=True,
        dns_names=service_dns_names(namespace, service),
        ip_addresses=[address],
    )
    return ServingCerts(ca=ca, serving=serving)


# -- the server process ------------------------------------------------------------------------


def free_port_on(address: str) -> int:
    """A TCP port nothing listens on right now at ``address``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class MetricsServer:
    """One running ``canary metrics-server`` process."""

    process: ManagedProcess
    address: str
    port: int
    certs: ServingCerts
    prometheus_url: str

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"

    @property
    def name(self) -> str:
        return self.process.name

    def alive(self) -> bool:
        return self.process.alive()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    def stop(self) -> None:
        self.process.stop()

    def get(
        self,
        path: str,
        *,
        client_cert: KeyPair | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> Answer:
        """GET ``path`` straight from the server (not through the API server), verifying its
        certificate against the server's CA and presenting ``client_cert`` if given."""
        context = ssl.create_default_context(cafile=str(self.certs.ca.cert))
        if client_cert is not None:
            context.load_cert_chain(str(client_cert.cert), str(client_cert.key))
        request = urllib.request.Request(f"{self.url}{path}", headers=dict(headers or {}))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
        try:
            with opener.open(request, timeout=timeout) as response:
                return Answer(int(response.status), response.read())
        except urllib.error.HTTPError as exc:
            return Answer(int(exc.code), exc.read())

    def healthy(self) -> bool:
        """``/healthz``: the process serves HTTPS."""
        return self.get("/healthz", timeout=2.0).status == 200

    def ready(self) -> bool:
        """``/readyz``: it has also had answers from Prometheus and the Kubernetes API."""
        return self.get("/readyz", timeout=2.0).status == 200


def start_metrics_server(
    workdir: Path,
    *,
    name: str,
    kubeconfig: Path,
    prometheus_url: str,
    address: str,
    certs: ServingCerts,
    requestheader_ca: Path,
    port: int | None = None,
    mesh: str = "linkerd",
    command: Sequence[str] = DEFAULT_COMMAND,
    wait_ready: bool = True,
    timeout: float = START_TIMEOUT,
) -> MetricsServer:
    """Start the server bound to ``address``; return once ``/readyz`` (or, with
    ``wait_ready=False``, for a server whose dependencies are broken on purpose, ``/healthz``)
    answers 200 over TLS.

    Its log is ``workdir/<name>.log``. The process dies with the thread that started it
    (``PR_SET_PDEATHSIG``), like every other server of the environment.
    """
    chosen = port if port is not None else free_port_on(address)
    argv = [
        *command,
        "--prometheus-address", prometheus_url,
        "--mesh", mesh,
        "--kubeconfig", str(kubeconfig),
        "--bind-address", address,
        "--secure-port", str(chosen),
        "--tls-cert-file", str(certs.serving.cert),
        "--tls-private-key-file", str(certs.serving.key),
        "--requestheader-client-ca-file", str(requestheader_ca),
        "--requestheader-allowed-names", FRONT_PROXY_CLIENT_NAME,
        "--log-level", "debug",
    ]  # fmt: skip
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    process = spawn(
        name,
        argv,
        log_path=workdir / f"{name}.log",
        env={"PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"},
        cwd=REPO,
    )
    server = MetricsServer(process=process, address=address, port=chosen, certs=certs, prometheus_url=prometheus_url)
    probe, path = (server.ready, "/readyz") if wait_ready else (server.healthy, "/healthz")
    try:
        wait_until(probe, timeout=timeout, what=f"{name} to answer {server.url}{path}", process=process)
    except BaseException:
        process.stop()
        raise
    return server


# -- raw API-server requests -------------------------------------------------------------------


def api_request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
    content_type: str = "application/json",
) -> Answer:
    """One request through the API server with ``api``'s credentials, whatever the status.

    This is what ``kubectl get --raw PATH`` does: the path goes to the API server, which serves
    it or proxies it to an aggregated server.
    """
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    method, url, headers, payload, post = api.param_serialize(
        method,
        path,
        query_params=list((query or {}).items()),
        header_params=headers,
        body=dict(body) if body is not None else None,
        auth_settings=["BearerToken"],
    )
    try:
        response = api.call_api(method, url, headers, payload, post, _request_timeout=_REQUEST_TIMEOUT)
        return Answer(int(response.status), bytes(response.read()))  # type: ignore[no-untyped-call]
    except ApiException as exc:
        raw = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
        return Answer(int(exc.status or 0), raw)
    except Exception as exc:  # noqa: BLE001 - urllib3 and socket errors, named in the message
        raise E2ESetupError(f"{method} {path} could not reach the API server: {exc}") from exc


def _apply(api: client.ApiClient, path: str, manifest: Mapping[str, Any]) -> None:
    """Server-side apply ``manifest`` at ``path`` (the object's own URL)."""
    answer = api_request(
        api,
        "PATCH",
        path,
        query={"fieldManager": FIELD_MANAGER, "force": "true"},
        body=manifest,
        content_type="application/apply-patch+yaml",
    )
    if answer.status >= 300:
        raise E2ESetupError(
            f"applying {manifest.get('kind')} {path} failed: HTTP {answer.status}: {answer.text()}"
        )


def _delete(api: client.ApiClient, path: str) -> None:
    answer = api_request(api, "DELETE", path)
    if answer.status >= 300 and answer.status != 404:
        raise E2ESetupError(f"DELETE {path} failed: HTTP {answer.status}: {answer.text()}")


def _apiservice_path(name: str = APISERVICE) -> str:
    return f"/apis/apiregistration.k8s.io/v1/apiservices/{name}"


def _endpointslice_path(namespace: str, name: str) -> str:
    return f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}"


def _endpoint_slice(namespace: str, service: str, address: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": {
                # How the aggregator (and kube-proxy, elsewhere) finds a Service's slices.
                "kubernetes.io/service-name": service,
                # Not the EndpointSlice controller's: it leaves slices of other managers alone.
                "endpointslice.kubernetes.io/managed-by": "e2e.canary.dev",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
    }


# -- the installation --------------------------------------------------------------------------


@dataclass
class SmiMetrics:
    """The metrics server, registered as ``v1alpha1.metrics.smi-spec.io`` in the cluster."""

    api: client.ApiClient
    host: NetHost
    server: MetricsServer
    workdir: Path
    kubeconfig: Path
    requestheader_ca: Path
    command: Sequence[str] = DEFAULT_COMMAND
    namespace: str = NAMESPACE
    service: str = SERVICE
    extra_servers: list[MetricsServer] = field(default_factory=list)

    # -- reads through the API server ----------------------------------------------------------

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Answer:
        """GET an API-server path (``kubectl get --raw``)."""
        return api_request(self.api, "GET", path, query=query)

    def traffic_metrics(self, namespace: str, kind: str, name: str, window: str | None = None) -> Answer:
        """``/apis/metrics.smi-spec.io/v1alpha1/namespaces/NS/KIND/NAME[?t=WINDOW]`` through the API server."""
        return self.get(f"{API_PATH}/namespaces/{namespace}/{kind}/{name}", {"t": window} if window else None)

    def apiservice(self) -> dict[str, Any]:
        answer = self.get(_apiservice_path())
        if answer.status != 200:
            raise E2ESetupError(f"reading APIService {APISERVICE} failed: HTTP {answer.status}: {answer.text()}")
        found: dict[str, Any] = answer.json()
        return found

    def conditions(self) -> list[dict[str, Any]]:
        try:
            conditions: list[dict[str, Any]] = (self.apiservice().get("status") or {}).get("conditions") or []
        except (E2ESetupError, ValueError) as exc:
            return [{"error": str(exc)}]
        return conditions

    def available(self) -> bool:
        return any(c.get("type") == "Available" and c.get("status") == "True" for c in self.conditions())

    def diagnostics(self) -> str:
        """APIService conditions, the server's log tail and the test host, for error messages."""
        conditions = "\n".join(
            f"  {c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', c.get('error', ''))}"
            for c in self.conditions()
        )
        try:
            host = "\n".join(describe(self.host))
        except E2ESetupError as exc:
            host = str(exc)
        return (
            f"APIService {APISERVICE} conditions:\n{conditions or '  (none)'}\n"
            f"test host {self.host.netns}:\n{host}\n"
            f"last lines of {self.server.process.log_path}:\n{self.server.log_tail()}"
        )

    # -- more instances --------------------------------------------------------------------------

    def start_instance(self, name: str, *, prometheus_url: str, wait_ready: bool = False) -> MetricsServer:
        """Another server on the same address and certificate (so the APIService's caBundle holds),
        e.g. one whose Prometheus is down (hence not waiting for ``/readyz`` by default); stopped
        with this installation at the latest."""
        server = start_metrics_server(
            self.workdir,
            name=name,
            kubeconfig=self.kubeconfig,
            prometheus_url=prometheus_url,
            address=self.host.host_address,
            certs=self.server.certs,
            requestheader_ca=self.requestheader_ca,
            command=self.command,
            wait_ready=wait_ready,
        )
        self.extra_servers.append(server)
        return server

    def point_service_at(self, server: MetricsServer) -> None:
        """Make the Service's EndpointSlice lead to ``server``."""
        _apply(
            self.api,
            _endpointslice_path(self.namespace, self.service),
            _endpoint_slice(self.namespace, self.service, server.address, server.port),
        )

    @contextlib.contextmanager
    def served_by(self, server: MetricsServer, *, probe_path: str) -> Iterator[None]:
        """Route the APIService to ``server`` for the ``with`` block, then back to :attr:`server`.

        The aggregator resolves the endpoint on every request from its EndpointSlice informer, so
        a switch is in effect within moments, and no request is ever answered "unavailable". On
        the way back it waits until ``probe_path`` (a path the main server answers without 5xx)
        has answered three times in a row below 500, so later tests see the main server again.
        """
        self.point_service_at(server)
        try:
            yield
        finally:
            self.point_service_at(self.server)
            streak = [0]

            def back() -> bool:
                streak[0] = streak[0] + 1 if self.get(probe_path).status < 500 else 0
                return streak[0] >= 3

            wait_until(back, timeout=30, what=f"{probe_path} to be served by {self.server.name} again", interval=0.2)

    # -- lifecycle -----------------------------------------------------------------------------

    def register(self, *, timeout: float = AVAILABLE_TIMEOUT) -> None:
        """Create the Namespace, Service, EndpointSlice and APIService; wait until it is served."""
        ns, svc = self.namespace, self.service
        _apply(self.api, f"/api/v1/namespaces/{ns}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        _apply(
            self.api,
            f"/api/v1/namespaces/{ns}/services/{svc}",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": svc, "namespace": ns},
                # No selector: the endpoints are ours to write, and they lead out of the cluster,
                # to a process on this machine.
                "spec": {
                    "type": "ClusterIP",
                    "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": self.server.port, "protocol": "TCP"}],
                },
            },
        )
        self.point_service_at(self.server)
        _apply(
            self.api,
            _apiservice_path(),
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": APISERVICE},
                "spec": {
                    "group": GROUP,
                    "version": VERSION,
                    "service": {"namespace": ns, "name": svc, "port": SERVICE_PORT},
                    "caBundle": self.server.certs.ca_bundle(),
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            },
        )
        self.wait_served(timeout=timeout)

    def wait_served(self, *, timeout: float = AVAILABLE_TIMEOUT) -> None:
        """Wait until the APIService is Available and its discovery document answers 200 through
        the API server; a failure quotes the APIService conditions and the server's log."""
        what = f"APIService {APISERVICE} to be Available and serve {API_PATH} through the API server"
        deadline = time.monotonic() + timeout
        last: str = ""
        while True:
            if not self.server.alive():
                raise E2ESetupError(
                    f"{self.server.name} exited with code {self.server.process.popen.returncode} while waiting "
                    f"for {what}\n{self.diagnostics()}"
                )
            try:
                if self.available():
                    answer = self.get(API_PATH)
                    if answer.status == 200:
                        return
                    last = f"GET {API_PATH} answered HTTP {answer.status}: {answer.text()}\n"
            except E2ESetupError as exc:
                last = f"{exc}\n"
            if time.monotonic() >= deadline:
                raise E2ESetupError(f"timed out after {timeout:.0f}s waiting for {what}\n{last}{self.diagnostics()}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Delete the APIService, the Service's objects and the Namespace, stop the servers, delete
        the test host: the reverse of :func:`start_smi_metrics`. Every step runs even if one fails."""
        errors: list[str] = []
        steps: list[tuple[str, Callable[[], None]]] = [
            ("APIService", lambda: _delete(self.api, _apiservice_path())),
            ("EndpointSlice", lambda: _delete(self.api, _endpointslice_path(self.namespace, self.service))),
            ("Service", lambda: _delete(self.api, f"/api/v1/namespaces/{self.namespace}/services/{self.service}")),
            ("Namespace", lambda: _delete(self.api, f"/api/v1/namespaces/{self.namespace}")),
        ]
        steps += [(f"server {s.name}", s.stop) for s in [*self.extra_servers, self.server]]
        steps.append(("test host", lambda: delete_net_host(self.host)))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - reported together below
                errors.append(f"{what}: {exc}")
        if errors:
            raise E2ESetupError("stopping the SMI metrics server left something behind: " + "; ".join(errors))


def start_smi_metrics(
    workdir: Path,
    *,
    api: client.ApiClient,
    kubeconfig: Path,
    prometheus_url: str,
    requestheader_ca: Path,
    command: Sequence[str] = DEFAULT_COMMAND,
    timeout: float = AVAILABLE_TIMEOUT,
) -> SmiMetrics:
    """Start ``canary metrics-server`` and register it with the API server (see the module doc).

    ``requestheader_ca`` is the CA of the API server's front-proxy client certificate
    (``ControlPlane.pki.front_proxy_ca.cert``). On failure everything started is undone and the
    error quotes the APIService conditions and the server's log.
    """
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    remove_stale()
    host = create_net_host()
    try:
        certs = make_serving_certs(workdir / "pki", address=host.host_address)
        server = start_metrics_server(
            workdir,
            name="metrics-server",
            kubeconfig=kubeconfig,
            prometheus_url=prometheus_url,
            address=host.host_address,
            certs=certs,
            requestheader_ca=requestheader_ca,
            command=command,
        )
    except BaseException:
        delete_net_host(host)
        raise
    smi = SmiMetrics(
        api=api, host=host, server=server, workdir=workdir, kubeconfig=kubeconfig,
        requestheader_ca=requestheader_ca, command=command,
    )
    try:
        smi.register(timeout=max(1.0, timeout - (time.monotonic() - began)))
    except BaseException:
        with contextlib.suppress(Exception):
            smi.stop()
        raise
    return smi


__all__ = [
    "API_PATH",
    "APISERVICE",
    "Answer",
    "MetricsServer",
    "ServingCerts",
    "SmiMetrics",
    "api_request",
    "make_serving_certs",
    "start_metrics_server",
    "start_smi_metrics",
]
