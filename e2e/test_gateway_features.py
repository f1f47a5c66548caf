"""A Gateway whose class does not list a feature the Canary's HTTPRoute needs: the Canary is
refused before anything is written, and goes on once the class lists it.

The simulated ``gatewayapi`` flavour ships only an HTTPRoute CRD, so the GatewayClass and Gateway
CRDs are the Gateway API's standard ones, from the module Traefik is built against (the same
files the Traefik environment installs). The test plays the implementation: it publishes the
class's ``status.supportedFeatures`` itself, as Traefik v3.6 does, without HTTPRouteRequestMirror.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import CustomObjectsApi

from e2e.cluster import install_manifests
from e2e.cluster.binaries import expected_binaries
from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import GATEWAY_GROUP

NAME = "podinfo"
CONTROLLER = "canary.dev/e2e-simulated-gateway"
#: What Traefik v3.6.12 lists for HTTPRoutes (its features.go): core plus these extended ones.
WITHOUT_MIRROR = ["Gateway", "HTTPRoute", "HTTPRouteHostRewrite", "HTTPRoutePathRewrite",
                  "HTTPRouteQueryParamMatching", "HTTPRouteResponseHeaderModification"]
# Gateways and their classes are the controller's to read, and the Canary's refusal waits for
# its next problem poll (30 s) plus the class cache's recheck (15 s).
ACCEPT_TIMEOUT = 120


def _standard_crds() -> list[Path]:
    crds = expected_binaries().traefik_crds.gateway_api
    paths = [crds / f"{GATEWAY_GROUP}_{plural}.yaml" for plural in ("gatewayclasses", "gateways")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.fail(f"the Gateway API standard CRDs are missing ({', '.join(missing)}): e2e/cluster/build.sh "
                    "copies them from the module Traefik is built against")
    return paths


@pytest.fixture
def gateway_class(env: Environment, kube: Kube) -> Iterator[str]:
    """A GatewayClass of this test's own (classes are cluster-wide), deleted afterwards."""
    install_manifests(env.api, _standard_crds())
    name = f"features-{kube.namespace}"
    custom = CustomObjectsApi(env.api)
    custom.create_cluster_custom_object(GATEWAY_GROUP, "v1", "gatewayclasses", {
        "apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "GatewayClass", "metadata": {"name": name},
        "spec": {"controllerName": CONTROLLER}})
    try:
        yield name
    finally:
        custom.delete_cluster_custom_object(GATEWAY_GROUP, "v1", "gatewayclasses", name)


def _publish(env: Environment, class_name: str, features: list[str]) -> None:
    """What the implementation does: the class's status lists its features, sorted by name."""
    CustomObjectsApi(env.api).patch_cluster_custom_object_status(
        GATEWAY_GROUP, "v1", "gatewayclasses", class_name,
        {"status": {"supportedFeatures": [{"name": f} for f in sorted(features)]}})



def test_a_mirror_through_a_gateway_without_request_mirror_is_refused_until_its_class_lists_it(
    env: Environment, kube: Kube, start_controller: StartController, gateway_class: str
) -> None:
    env.use_flavour("gatewayapi")
    _publish(env, gateway_class, WITHOUT_MIRROR)
    kube.custom.create_namespaced_custom_object(GATEWAY_GROUP, "v1", kube.namespace, "gateways", {
        "apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "Gateway", "metadata": {"name": "public"},
        "spec": {"gatewayClassName": gateway_class,
                 "listeners": [{"name": "web", "protocol": "HTTP", "port": 80}]}})
    start_controller()
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("1"), replicas=1))
    body = app.canary(NAME, kube.namespace, provider="gatewayapi", metrics=[])
    analysis = body["spec"]["analysis"]
    del analysis["stepWeight"], analysis["maxWeight"]
    analysis.update(iterations=2, mirror=True)
    body["spec"]["service"]["gatewayRefs"] = [{"name": "public"}]
    kube.create(body)

    stalled = wait_for(lambda: kube.condition(NAME, "Stalled"), lambda c: c is not None, timeout=60,
                       what="the Canary stalled for the missing Gateway feature")
    assert stalled is not None and stalled["reason"] == "GatewayFeatureUnsupported", stalled
    for part in ("spec.analysis.mirror needs HTTPRouteRequestMirror", f"Gateway {kube.namespace}/public",
                 repr(gateway_class), CONTROLLER, "Remove spec.analysis.mirror"):
        assert part in stalled["message"], stalled["message"]
    assert kube.custom_object(GATEWAY_GROUP, "v1", "httproutes", NAME) is None, "a route was written"
    assert kube.status(NAME).get("phase") in (None, "Initializing")

    _publish(env, gateway_class, [*WITHOUT_MIRROR, "HTTPRouteRequestMirror"])
    kube.wait_for_phase(NAME, "Initialized", timeout=ACCEPT_TIMEOUT)
    assert kube.custom_object(GATEWAY_GROUP, "v1", "httproutes", NAME) is not None
