"""What a scenario holds of the running Traefik: where it listens, its counters, its service names."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from e2e.processes import E2ESetupError
from e2e.traefik.http import http_get
from e2e.traefik.launcher import TraefikProcess

REQUESTS_TOTAL = "traefik_service_requests_total"


class TraefikMetricsError(E2ESetupError):
    """Traefik's ``/metrics`` did not answer 200 or could not be parsed."""


@dataclass
class TraefikGateway:
    """Traefik serving the ``Gateway`` ``gateway_namespace/gateway_name`` on :attr:`web_url`."""

    process: TraefikProcess
    gateway_namespace: str
    gateway_name: str
    web_url: str
    """``http://127.0.0.1:<port>``: Traefik's ``web`` entryPoint, the Gateway listener's port."""
    metrics_url: str
    """Traefik's own ``/metrics`` (the harness's Prometheus scrapes the same endpoint)."""

    def requests_by_service(self) -> dict[str, dict[str, float]]:
        """Traefik's ``traefik_service_requests_total`` read from its ``/metrics`` now:
        ``{traefik service label: {code: count}}``, summed over method and protocol."""
        status, text = http_get(self.metrics_url)
        if status != 200:
            raise TraefikMetricsError(f"GET {self.metrics_url} answered {status}: {text[:200]}")
        counts: dict[str, dict[str, float]] = {}
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:
            raise TraefikMetricsError(f"cannot parse {self.metrics_url}: {exc}") from exc
        for family in families:
            for sample in family.samples:
                if sample.name != REQUESTS_TOTAL:
                    continue
                by_code = counts.setdefault(sample.labels.get("service", ""), {})
                code = sample.labels.get("code", "")
                by_code[code] = by_code.get(code, 0.0) + sample.value
        return counts

    def service_label(self, namespace: str, service: str, port: int, provider: str = "kubernetesgateway") -> str:
        """The ``service`` label Traefik gives a Kubernetes Service backend in its metrics.

        The Gateway API provider names a backend ``<ns>-<svc>-http-<port>`` (HTTP backends), the
        CRD provider ``<ns>-<svc>-<port>``; either is suffixed with ``@<provider>``.
        """
        if provider == "kubernetesgateway":
            return f"{namespace}-{service}-http-{port}@{provider}"
        return f"{namespace}-{service}-{port}@{provider}"

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines)

    def alive(self) -> bool:
        return self.process.alive()

    def stop(self) -> None:
        self.process.stop()
