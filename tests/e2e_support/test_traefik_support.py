"""The Traefik helpers of the e2e harness that need no Traefik: metrics parsing, names, versions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from e2e.cluster.binaries import binaries_missing, expected_binaries, read_versions
from e2e.harness.loopback import QuietHandler, serve_loopback
from e2e.traefik.gateway import TraefikGateway, TraefikMetricsError
from e2e.traefik.launcher import DURATION_BUCKETS, TraefikProcess, traefik_argv

# The shape Traefik v3.6 exposes (one series per service, code, method and protocol), other
# families around it.
EXPOSITION = """\
# HELP traefik_config_reloads_total Config reloads
# TYPE traefik_config_reloads_total counter
traefik_config_reloads_total 3
# HELP traefik_service_requests_total How many HTTP requests processed on a service, partitioned by status code, protocol, and method.
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="200",method="GET",protocol="http",service="apps-web-http-80@kubernetesgateway"} 7
traefik_service_requests_total{code="200",method="POST",protocol="http",service="apps-web-http-80@kubernetesgateway"} 2
traefik_service_requests_total{code="500",method="GET",protocol="http",service="apps-web-http-80@kubernetesgateway"} 1
traefik_service_requests_total{code="200",method="GET",protocol="http",service="apps-web-canary-80@kubernetescrd"} 4
# HELP traefik_service_request_duration_seconds How long it took to process the request on a service.
# TYPE traefik_service_request_duration_seconds histogram
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="apps-web-http-80@kubernetesgateway",le="+Inf"} 7
traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="apps-web-http-80@kubernetesgateway"} 0.07
traefik_service_request_duration_seconds_count{code="200",method="GET",protocol="http",service="apps-web-http-80@kubernetesgateway"} 7
"""


def _serve(status: int, body: str) -> Iterator[str]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with serve_loopback(Handler) as base:
        yield f"{base}/metrics"


@pytest.fixture
def metrics_url() -> Iterator[str]:
    yield from _serve(200, EXPOSITION)


def _gateway(metrics_url: str) -> TraefikGateway:
    # Reading counters touches no process.
    return TraefikGateway(cast(TraefikProcess, None), "traefik-gateway", "traefik", "http://127.0.0.1:1", metrics_url)


def test_requests_by_service_sums_methods_and_protocols_by_code(metrics_url: str) -> None:
    assert _gateway(metrics_url).requests_by_service() == {
        "apps-web-http-80@kubernetesgateway": {"200": 9.0, "500": 1.0},
        "apps-web-canary-80@kubernetescrd": {"200": 4.0},
    }


def test_a_failing_metrics_endpoint_is_an_error() -> None:
    for url in _serve(503, "not ready"):
        with pytest.raises(TraefikMetricsError, match="503"):
            _gateway(url).requests_by_service()


def test_service_labels_as_each_provider_spells_them() -> None:
    gateway = _gateway("http://127.0.0.1:1/metrics")
    assert gateway.service_label("apps", "web-canary", 80) == "apps-web-canary-http-80@kubernetesgateway"
    assert gateway.service_label("apps", "web-canary", 80, provider="kubernetescrd") == "apps-web-canary-80@kubernetescrd"


def test_the_listener_port_is_the_web_entrypoint_and_nothing_listens_elsewhere() -> None:
    argv = traefik_argv(Path("/bin/traefik"), web_port=4001, metrics_port=4002)
    addresses = sorted(a for a in argv if ".address=" in a)
    assert addresses == ["--entryPoints.traefik.address=127.0.0.1:4002", "--entryPoints.web.address=127.0.0.1:4001"]
    # ping, metrics and the API on our loopback entryPoint (the API is served on the one named
    # "traefik"): Traefik would otherwise open its own :8080 on every address.
    assert "--ping.entryPoint=traefik" in argv and "--metrics.prometheus.entryPoint=traefik" in argv
    assert "--api.insecure=true" in argv
    assert f"--metrics.prometheus.buckets={','.join(f'{b:g}' for b in DURATION_BUCKETS)}" in argv
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS) and DURATION_BUCKETS[0] <= 0.005


def test_versions_name_traefik_and_the_gateway_api_release() -> None:
    versions = read_versions()
    assert versions.traefik.startswith("v3.") and versions.gateway_api.startswith("v1.")


def test_traefik_without_its_crds_counts_as_missing(tmp_path: Path) -> None:
    binaries = expected_binaries(cache=tmp_path)
    binaries.traefik.parent.mkdir(parents=True)
    binaries.traefik.write_text("#!/bin/sh\n")
    os.chmod(binaries.traefik, 0o755)
    assert "traefik" not in binaries_missing(binaries)
    assert "traefik-crds" in binaries_missing(binaries)
    binaries.traefik_crds.gateway_api.mkdir(parents=True)
    (binaries.traefik_crds.gateway_api / "gateway.networking.k8s.io_httproutes.yaml").write_text("{}\n")
    binaries.traefik_crds.traefik.write_text("{}\n")
    assert "traefik-crds" not in binaries_missing(binaries)
