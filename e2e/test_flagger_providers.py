"""Flagger's ``provider: linkerd`` on a controller set up for another mesh: the Canary's own
provider picks the builtin checks' metric names (Linkerd's ``response_total``), so the release
is judged on the traffic the Linkerd-flavoured data plane really served. And ``metricsServer``
sends a Canary's builtin checks to the Prometheus it names."""

from __future__ import annotations

from typing import Any

from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.kube import GROUP, PLURAL, VERSION, Kube, wait_for
from e2e.harness.release import install_app, ship

RPS = 40


def _metric_checks(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in status.get("checks") or [] if c.get("kind") == "metric"]


def test_provider_linkerd_queries_linkerds_metrics_whatever_the_controllers_mesh(
    env: Environment, kube: Kube, start_controller: StartController,
) -> None:
    env.use_flavour("linkerd")
    start_controller(mesh="istio")
    install_app(kube, "podinfo", provider="linkerd", step_weight=50, max_weight=50)
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)
    ship(kube, "podinfo", "2")
    passed = wait_for(lambda: kube.status("podinfo"),
                      lambda st: any(c.get("verdict") == "Pass" for c in _metric_checks(st)),
                      timeout=120, what="a passing metric check measured from real traffic")
    for check in _metric_checks(passed):
        assert "response_total" in check["source"] or "response_latency_ms_bucket" in check["source"], check
        assert "istio_" not in check["source"], check
    final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=150)
    assert final["phase"] == "Succeeded", final


def test_metrics_server_is_the_prometheus_a_canary_asks(
    env: Environment, kube: Kube, start_controller: StartController,
) -> None:
    env.use_flavour("linkerd")
    # The controller's own Prometheus address leads nowhere; only the Canary's metricsServer works.
    start_controller(prometheus_url="http://127.0.0.1:9")
    install_app(kube, "podinfo", step_weight=50, max_weight=50)
    patch = {"spec": {"metricsServer": env.prometheus.url}}
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, "podinfo", patch)
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)
    ship(kube, "podinfo", "2")
    final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=150)
    assert final["phase"] == "Succeeded", final
    assert all(c["verdict"] == "Pass" for c in _metric_checks(final)), final.get("checks")
