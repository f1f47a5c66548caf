"""Controller settings: frozen, built once from flags and environment, passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from canary.domain.providers import Mesh as Mesh  # re-exported: settings name it
from canary.domain.spec import ProviderType


@dataclass(frozen=True)
class MetricsSettings:
    #: Where builtin checks read from when a Canary does not say.
    source: ProviderType = ProviderType.PROMETHEUS
    prometheus_address: str = "http://prometheus.monitoring:9090"
    mesh: Mesh = Mesh.LINKERD
    #: Bounded retries for transient provider errors (tenacity).
    retry_attempts: int = 3
    retry_max_wait: timedelta = timedelta(seconds=2)
    query_timeout: timedelta = timedelta(seconds=10)


@dataclass(frozen=True)
class LeaderElectionSettings:
    enabled: bool = True
    lease_name: str = "canary-controller"
    lease_namespace: str = "default"
    identity: str = ""
    lease_duration: timedelta = timedelta(seconds=15)
    renew_deadline: timedelta = timedelta(seconds=10)
    retry_period: timedelta = timedelta(seconds=2)


@dataclass(frozen=True)
class ShardingSettings:
    """Dynamic sharding over Leases (``canary.kube.shards``): the Canaries are hashed into
    ``buckets`` buckets, and each replica acts only on those of the buckets whose Lease it holds.
    0 buckets: off, one leader acts on every Canary (``LeaderElectionSettings``)."""

    buckets: int = 0

    @property
    def enabled(self) -> bool:
        return self.buckets > 0


@dataclass(frozen=True)
class AlertSettings:
    """The controller-wide default alert provider, used by Canaries without spec.analysis.alerts
    (Flagger's -slack-url, -slack-channel, -slack-user, -slack-proxy-url, -msteams-url,
    -msteams-proxy-url). Slack wins when both addresses are set, as in Flagger."""

    slack_url: str = ""
    slack_channel: str = "general"
    slack_user: str = "canary"
    slack_proxy_url: str = ""
    msteams_url: str = ""
    msteams_proxy_url: str = ""


@dataclass(frozen=True)
class Settings:
    #: Namespaces to watch; empty means the whole cluster.
    namespaces: tuple[str, ...] = ()
    #: Router used when a Canary has no ``spec.provider``: smi, smi:v1alphaN or gatewayapi.
    default_provider: str = "smi"
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    leader_election: LeaderElectionSettings = field(default_factory=LeaderElectionSettings)
    #: With buckets, replaces the single leader: the lease name and durations above are reused.
    sharding: ShardingSettings = field(default_factory=ShardingSettings)
    log_level: str = "info"
    #: Port of the controller's own Prometheus /metrics and of /healthz, /readyz.
    metrics_port: int = 8080
    #: kubeconfig file; None means in-cluster credentials, else $KUBECONFIG / ~/.kube/config.
    kubeconfig: str | None = None
    #: Smallest pause between two reconciliations of one Canary woken by a burst of events.
    debounce: timedelta = timedelta(milliseconds=200)
    alerts: AlertSettings = field(default_factory=AlertSettings)
