"""Scenario 10: the same release on every TrafficSplit version meshes serve, and on HTTPRoute.

Each case switches the cluster's mesh CRDs to one flavour (what a Linkerd, OSM, Traefik Mesh,
SMI-SDK or Gateway API cluster serves), starts a controller that discovers the router itself
(or is pinned, for v1alpha1 on a Linkerd cluster), and checks the data plane split traffic at
the step weight and ended with everything on the promoted primary.
"""

from __future__ import annotations

import pytest

from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube
from e2e.harness.release import install_app, route_shares, ship, template_version
from e2e.harness.traffic import assert_share_matches, requests_by_canary_weight


@pytest.mark.parametrize(
    ("flavour", "pin", "provider"),
    [
        ("linkerd", "smi:v1alpha1", "smi:v1alpha1"),  # weights written as quantities
        ("linkerd", None, "smi:v1alpha2"),
        ("osm", None, "smi:v1alpha2"),
        ("traefik", None, "smi:v1alpha3"),
        ("sdk", None, "smi:v1alpha4"),
        ("gatewayapi", "gatewayapi", "gatewayapi"),
    ],
    ids=["linkerd-v1alpha1", "linkerd-v1alpha2", "osm-v1alpha2", "traefik-v1alpha3", "sdk-v1alpha4", "httproute"],
)
def test_release_on_each_router(
    env: Environment, kube: Kube, start_controller: StartController, flavour: str, pin: str | None, provider: str
) -> None:
    env.use_flavour(flavour)
    start_controller(default_provider=pin) if pin else start_controller()
    install_app(kube, "podinfo", step_weight=50, max_weight=50)
    env.mesh.client.set_load(kube.namespace, "podinfo", 40)
    env.mesh.client.reset_stats(kube.namespace, "podinfo")

    ship(kube, "podinfo", "2")
    final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=120)

    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment("podinfo-primary")) == "2"
    assert route_shares(kube, "podinfo", provider) == {"podinfo-primary": 1.0, "podinfo-canary": 0.0}
    by_weight = requests_by_canary_weight(env.mesh.client.stats(kube.namespace, "podinfo"), "podinfo-canary")
    assert 50 in by_weight, f"the data plane never routed 50/50 on {provider}: {by_weight}"
    assert_share_matches(by_weight[50], 0.5)
