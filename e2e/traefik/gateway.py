"""What a scenario holds of the running Traefik: where it listens, its counters, its service names."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from e2e.processes import E2ESetupError
from e2e.traefik.http import http_get
from e2e.traefik.launcher import WEB_ENTRYPOINT, TraefikProcess
from e2e.traefik.observe import applied_split, requests_by_backend

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

    @property
    def entrypoint(self) -> str:
        """The entryPoint an IngressRoute names to be served where :attr:`web_url` listens."""
        return WEB_ENTRYPOINT

    @property
    def api_url(self) -> str:
        """Traefik's read-only API (``/api/http/services``, ...), on the metrics entryPoint."""
        return self.metrics_url.removesuffix("/metrics") + "/api"

    def requests_by_backend(self, namespace: str, services: Collection[str]) -> dict[str, int]:
        """Requests Traefik has sent each of ``services`` (Service names in ``namespace``) so far,
        through either Kubernetes provider, by its own counters."""
        return requests_by_backend(self.requests_by_service(), namespace, services)

    def applied_split(self, namespace: str, apex: str) -> dict[str, float] | None:
        """The shares of ``<apex>-primary`` and ``<apex>-canary`` in the weighted service Traefik
        applies now (its API, not the route object); None while it applies none."""
        status, text = http_get(f"{self.api_url}/http/services?per_page=1000")
        if status != 200:
            raise TraefikMetricsError(f"GET {self.api_url}/http/services answered {status}: {text[:200]}")
        return applied_split(json.loads(text), namespace, (f"{apex}-primary", f"{apex}-canary"))

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
