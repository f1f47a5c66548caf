"""The controller under test runs as the chart's ServiceAccount, with the chart's RBAC.

``helm template`` renders ``templates/rbac.yaml`` as ``helm install`` would into
:data:`CONTROLLER_NAMESPACE`; the ServiceAccount, ClusterRole and ClusterRoleBinding are applied
once per session, and the controller gets a kubeconfig with a token of that ServiceAccount from
the TokenRequest API. So every scenario proves the chart grants enough: a verb missing from the
chart makes the controller's request fail with 403, and the scenario with it.

The SMI metrics server runs the same way as the chart's metrics-server ServiceAccount
(:func:`metrics_server_kubeconfig`).

One difference from an install, and why: the chart's leader-election Role lives in the release
namespace, where its Lease is. Each scenario's controller holds its Lease in the scenario's own
namespace (so scenarios never share one), so the same Role and RoleBinding, rendered by the
chart, are created there too, still bound to the ServiceAccount in :data:`CONTROLLER_NAMESPACE`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.cluster import install_manifests
from e2e.harness.chart import render
from e2e.processes import E2ESetupError

#: Where the chart is "installed": its ServiceAccount lives here.
CONTROLLER_NAMESPACE = "canary-system"
RELEASE = "canary"
#: Long enough for the whole suite; the API server may cap it lower (the token says when it ends).
TOKEN_SECONDS = 24 * 3600


@dataclass
class ChartIdentity:
    """The chart's ServiceAccount, and a kubeconfig that authenticates as it."""

    kubeconfig: Path
    service_account: str
    namespace: str
    lease_rbac: tuple[dict[str, Any], ...]
    """The chart's Role and RoleBinding for the Lease, as rendered (for the release namespace)."""
    granted: set[str] = field(default_factory=set)
    """Namespaces that have their copy of :attr:`lease_rbac`."""

    @property
    def user(self) -> str:
        """The name the API server (and its audit log) gives the controller's requests."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def grant_lease(self, api: client.ApiClient, namespace: str) -> None:
        """Create the chart's leader-election Role and RoleBinding in ``namespace`` (once)."""
        if namespace in self.granted:
            return
        # The generated signatures want model objects; the rendered objects are dicts, which it takes.
        rbac: Any = client.RbacAuthorizationV1Api(api)
        for obj in self.lease_rbac:
            body = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
            create = rbac.create_namespaced_role if obj["kind"] == "Role" else rbac.create_namespaced_role_binding
            try:
                create(namespace, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise E2ESetupError(f"creating the chart's {obj['kind']} in {namespace}: {exc.status} "
                                        f"{exc.reason}") from exc
        self.granted.add(namespace)


def install_chart_identity(api: client.ApiClient, admin_kubeconfig: Path, workdir: Path) -> ChartIdentity:
    """Apply the chart's ServiceAccount and cluster RBAC, and write a kubeconfig with its token."""
    rendered = render(release=RELEASE, namespace=CONTROLLER_NAMESPACE, show_only="templates/rbac.yaml")
    lease_rbac = tuple(o for o in rendered if o["kind"] in ("Role", "RoleBinding"))
    cluster_rbac = [o for o in rendered if o["kind"] not in ("Role", "RoleBinding")]
    kubeconfig, name = _service_account_kubeconfig(api, admin_kubeconfig, workdir, cluster_rbac, "controller")
    return ChartIdentity(kubeconfig=kubeconfig, service_account=name, namespace=CONTROLLER_NAMESPACE,
                         lease_rbac=lease_rbac)


#: The least values that render the chart's metrics server (its TLS settings matter not for RBAC).
METRICS_SERVER_VALUES: dict[str, Any] = {
    "metricsServer": {"enabled": True, "tls": {"secretName": "unused"}, "apiService": {"insecureSkipTLSVerify": True}},
}
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def metrics_server_kubeconfig(api: client.ApiClient, admin_kubeconfig: Path, workdir: Path) -> Path:
    """A kubeconfig for ``canary metrics-server`` as the chart's metrics-server ServiceAccount,
    with the chart's ClusterRole and its RoleBinding to the requestheader ConfigMap reader."""
    rendered = render(METRICS_SERVER_VALUES, release=RELEASE, namespace=CONTROLLER_NAMESPACE,
                      show_only="templates/metrics-server.yaml")
    rbac = [o for o in rendered if o["kind"] in RBAC_KINDS]
    kubeconfig, _ = _service_account_kubeconfig(api, admin_kubeconfig, workdir, rbac, "metrics-server")
    return kubeconfig


def _service_account_kubeconfig(api: client.ApiClient, admin_kubeconfig: Path, workdir: Path,
                                rbac: list[dict[str, Any]], stem: str) -> tuple[Path, str]:
    """Apply ``rbac`` (one ServiceAccount among them) into :data:`CONTROLLER_NAMESPACE` and write
    ``workdir/<stem>.kubeconfig`` with a token of that ServiceAccount; returns it and the name."""
    [account] = [o for o in rbac if o["kind"] == "ServiceAccount"]
    name = account["metadata"]["name"]
    workdir.mkdir(parents=True, exist_ok=True)
    manifests = workdir / f"{stem}-rbac.yaml"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONTROLLER_NAMESPACE}}
    manifests.write_text(yaml.safe_dump_all([namespace, *rbac]))
    install_manifests(api, [manifests])
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=[], expiration_seconds=TOKEN_SECONDS))
    try:
        answer = client.CoreV1Api(api).create_namespaced_service_account_token(name, CONTROLLER_NAMESPACE, request)
    except ApiException as exc:
        raise E2ESetupError(f"requesting a token for ServiceAccount {CONTROLLER_NAMESPACE}/{name}: {exc.status} "
                            f"{exc.reason}") from exc
    if answer.status is None or not answer.status.token:
        raise E2ESetupError(f"the TokenRequest for {CONTROLLER_NAMESPACE}/{name} came back without a token")
    kubeconfig = _token_kubeconfig(admin_kubeconfig, workdir / f"{stem}.kubeconfig", answer.status.token,
                                   user=f"{CONTROLLER_NAMESPACE}-{name}")
    return kubeconfig, name


def _token_kubeconfig(admin: Path, path: Path, token: str, *, user: str) -> Path:
    """A kubeconfig for the cluster ``admin`` points at, authenticating with ``token`` only."""
    config = yaml.safe_load(admin.read_text())
    current = config.get("current-context")
    [context] = [c["context"] for c in config["contexts"] if c["name"] == current]
    [cluster] = [c for c in config["clusters"] if c["name"] == context["cluster"]]
    written = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": user,
    }
    # It holds a credential: readable by its owner only, from the moment it exists.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(written, handle, sort_keys=False)
    return path
