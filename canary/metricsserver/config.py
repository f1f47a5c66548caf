"""Settings of ``canary metrics-server``: frozen, built once from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from canary.config import Mesh
from canary.domain.bounds import METRICS_WINDOW
from canary.errors import CanaryError

#: The kube-apiserver's own defaults for the requestheader flags (and what it writes into the
#: ``extension-apiserver-authentication`` ConfigMap unless told otherwise).
DEFAULT_USERNAME_HEADERS = ("X-Remote-User",)
DEFAULT_GROUP_HEADERS = ("X-Remote-Group",)
DEFAULT_EXTRA_HEADERS_PREFIXES = ("X-Remote-Extra-",)


class ConfigError(CanaryError):
    """A flag, a file it names, or the authentication ConfigMap is unusable; the message says which."""


class StartupError(CanaryError):
    """The server could not start for a reason outside its configuration: the port is taken, the
    Kubernetes API does not answer."""


@dataclass(frozen=True)
class RequestHeaderSettings:
    """The ``--requestheader-*`` flags. ``client_ca_file=None`` means: read all of these from the
    ``kube-system/extension-apiserver-authentication`` ConfigMap instead."""

    client_ca_file: str | None = None
    #: Common names a front-proxy certificate may carry; empty means any cert the CA signed.
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = DEFAULT_USERNAME_HEADERS
    group_headers: tuple[str, ...] = DEFAULT_GROUP_HEADERS
    extra_headers_prefixes: tuple[str, ...] = DEFAULT_EXTRA_HEADERS_PREFIXES


@dataclass(frozen=True)
class ServerSettings:
    prometheus_address: str = "http://prometheus.monitoring:9090"
    mesh: Mesh = Mesh.LINKERD
    #: YAML file overriding queries of the mesh's query set (see :mod:`canary.metricsserver.queries`).
    queries_file: str | None = None
    #: kubeconfig file; None means in-cluster credentials, else $KUBECONFIG / ~/.kube/config.
    kubeconfig: str | None = None
    bind_address: str = "0.0.0.0"
    secure_port: int = 8443
    #: Serving certificate and key (PEM); both None means a self-signed pair made at start.
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    requestheader: RequestHeaderSettings = field(default_factory=RequestHeaderSettings)
    log_level: str = "info"
    # Not flags. Each request runs its queries concurrently; two attempts of 4 s keep the worst
    # case (about 8.3 s with the back-off) under the controller's 10 s per-request timeout.
    prometheus_attempts: int = 2
    prometheus_timeout: timedelta = timedelta(seconds=4)
    #: How long a list of Deployments/Pods/... is reused, and how soon a miss may list again.
    inventory_ttl: timedelta = timedelta(seconds=10)
    inventory_min_refresh: timedelta = timedelta(seconds=2)
    kube_timeout: timedelta = timedelta(seconds=5)
    #: /readyz: how often Prometheus and the Kubernetes API are probed, and how old a success may be.
    health_interval: timedelta = timedelta(seconds=10)
    health_grace: timedelta = timedelta(seconds=60)
    #: The longest ``t`` accepted: a window of months would be an expensive query for Prometheus.
    #: It may only narrow :data:`canary.domain.bounds.METRICS_WINDOW`.
    max_window: timedelta = METRICS_WINDOW.ceiling
