"""A/B testing with SMI: ``analysis.match`` through an HTTPRouteGroup that the TrafficSplit names.

An SMI v1alpha4 mesh (flavour "sdk": TrafficSplit and HTTPRouteGroup v1alpha4; and v1alpha3, as
Traefik Mesh serves them, flavour "traefik") and a blue/green
Canary with iterations and a header match, held in the A/B stage by a confirm-promotion gate.
While it is judged, two loads run at once through the simulated data plane, one with the header
and one without: every matching request reaches the canary, and none of the others do (they go
to the apex Service, which selects the primary's pods, as the SMI specification says unmatched
requests do). Then the gate opens and the release is promoted; the split names no group any more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.gate import Gate, serve_gate
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import template_version, ship
from e2e.test_mesh_rules import drive

NAME = "podinfo"
SPLIT, GROUP = ("split.smi-spec.io", "trafficsplits"), ("specs.smi-spec.io", "httproutegroups")
MATCH = [{"headers": {"x-canary": {"exact": "insider"}}}]
#: Sampled one by one to see which pods the apex sends unmatched requests to.
PROBES = 20


@pytest.fixture
def gate() -> Iterator[Gate]:
    with serve_gate() as state:
        yield state


def _object(kube: Kube, resource: tuple[str, str], version: str) -> dict[str, Any]:
    found = kube.custom_object(resource[0], version, resource[1], NAME)
    assert found is not None, f"no {resource[1]} {NAME}"
    return found


# The flavour and the version it serves of both TrafficSplit and HTTPRouteGroup.
@pytest.mark.parametrize(("flavour", "version"), [("sdk", "v1alpha4"), ("traefik", "v1alpha3")])
def test_smi_ab_by_header_sends_only_matching_requests_to_the_canary_then_promotes(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate, flavour: str, version: str,
) -> None:
    env.use_flavour(flavour)
    start_controller()
    ns, client = kube.namespace, env.mesh.client
    body = app.canary(NAME, ns, provider="smi", metrics=[], webhooks=[
        {"name": "release-approval", "type": "confirm-promotion", "url": gate.url, "timeout": "2s"}])
    analysis = body["spec"]["analysis"]
    del analysis["stepWeight"], analysis["maxWeight"]
    analysis.update(iterations=2, match=MATCH)
    kube.create(app.deployment(NAME, ns, annotations=app.behaviour("1"), replicas=1))
    kube.create(body)
    kube.wait_for_phase(NAME, "Initialized", timeout=90)

    ship(kube, NAME, "2")
    kube.wait_for_phase(NAME, "WaitingPromotion", timeout=90)
    split, group = _object(kube, SPLIT, version), _object(kube, GROUP, version)
    assert group["apiVersion"] == f"specs.smi-spec.io/{version}"
    assert split["spec"]["matches"] == [{"kind": "HTTPRouteGroup", "name": NAME}], split
    assert group["spec"] == {"matches": [
        {"name": "ab-0", "pathRegex": ".*", "methods": ["*"], "headers": {"x-canary": "^insider$"}}]}, group
    assert [o["kind"] for o in group["metadata"]["ownerReferences"]] == ["Canary"]
    # The data plane follows both objects through its watch; wait until it serves the group.
    wait_for(lambda: client.send(ns, NAME, headers={"x-canary": "insider"}).backend,
             lambda backend: backend == f"{NAME}-canary", timeout=30, what="the HTTPRouteGroup in the data plane")

    seen = drive(client, lambda: client.stats(ns, NAME), {
        "insiders": {"namespace": ns, "service": NAME, "headers": {"x-canary": "insider"}},
        # A near miss: the exact match is anchored, so a longer value is not an insider.
        "others": {"namespace": ns, "service": NAME, "headers": {"x-canary": "insiders"}},
    })
    unmatched_pods = {client.send(ns, NAME).pod for _ in range(PROBES)}
    assert kube.status(NAME)["phase"] == "WaitingPromotion", "the gate holds the A/B stage while sampling"
    assert set(seen["insiders"]) == {f"{NAME}-canary"}, seen
    # Requests outside the group are routed by the apex Service, which selects the primary's pods.
    assert set(seen["others"]) == {NAME}, seen
    assert unmatched_pods and all(p is not None and p.startswith(f"{NAME}-primary-") for p in unmatched_pods), \
        unmatched_pods

    gate.approved.set()
    final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=90)
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment(f"{NAME}-primary")) == "2"
    # Released: the split names no group, and matching requests are served by the promoted primary.
    wait_for(lambda: _object(kube, SPLIT, version)["spec"].get("matches"), lambda m: not m, timeout=30,
             what="the split without matches")
    wait_for(lambda: {client.send(ns, NAME, headers={"x-canary": "insider"}).backend for _ in range(PROBES)},
             lambda backends: backends == {f"{NAME}-primary"}, timeout=30, what="matching requests on the primary")
