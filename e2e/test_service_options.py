"""Flagger's Service options on a real API server: ``service.appProtocol``, ``portDiscovery`` and
the ``apex``/``primary``/``canary`` metadata reach the three Services the controller makes, and a
change to them in the Canary is carried over (a GitOps edit of the manifest)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import GROUP, PLURAL, VERSION, Kube, wait_for

METRICS_PORT = 9797


def _service(kube: Kube, name: str) -> dict[str, Any]:
    obj = kube.core.read_namespaced_service(name, kube.namespace)
    out: dict[str, Any] = client.ApiClient.sanitize_for_serialization(kube.api, obj)  # type: ignore[no-untyped-call]
    return out


def test_service_options_reach_the_services(env: Environment, kube: Kube, start_controller: StartController) -> None:
    env.use_flavour("linkerd")
    start_controller()
    deployment = app.deployment("podinfo", kube.namespace, annotations=app.behaviour("1"), replicas=1)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [*container["ports"], {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    kube.create(deployment)
    canary = app.canary("podinfo", kube.namespace)
    canary["spec"]["service"].update({
        "appProtocol": "http",
        "portDiscovery": True,
        "apex": {"labels": {"expose": "public"}, "annotations": {"team": "web"}},
        "canary": {"labels": {"track": "canary"}},
    })
    canary["spec"]["analysis"]["canaryReadyThreshold"] = 50
    kube.create(canary)
    kube.wait_for_phase("podinfo", "Initialized", timeout=90)

    apex, primary, canary_svc = (_service(kube, n) for n in ("podinfo", "podinfo-primary", "podinfo-canary"))
    assert apex["metadata"]["labels"]["expose"] == "public" and apex["metadata"]["annotations"]["team"] == "web"
    assert canary_svc["metadata"]["labels"]["track"] == "canary"
    assert "expose" not in primary["metadata"]["labels"] and "track" not in primary["metadata"]["labels"]
    for svc in (apex, primary, canary_svc):
        ports = {p["port"]: p for p in svc["spec"]["ports"]}
        assert set(ports) == {app.PORT, METRICS_PORT}, svc["spec"]["ports"]
        assert ports[app.PORT]["appProtocol"] == "http"
        assert ports[METRICS_PORT]["name"] == "metrics" and ports[METRICS_PORT]["targetPort"] == METRICS_PORT

    # An edit of the Canary's metadata is converged onto the live Service.
    patch = {"spec": {"service": {"apex": {"labels": {"expose": "internal"}, "annotations": {"team": "web"}}}}}
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, "podinfo", patch)
    wait_for(lambda: _service(kube, "podinfo")["metadata"]["labels"].get("expose"), lambda v: v == "internal",
             timeout=30, what="the apex Service to carry the edited label")
