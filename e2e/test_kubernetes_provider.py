"""``provider: kubernetes``: Flagger's blue/green without a mesh, on the local control plane.

A Canary with ``iterations`` and a confirm-promotion gate: once initialised, the apex Service
selects the primary's pods and no route object exists (no TrafficSplit of any version, no
HTTPRoute). A new revision is judged through ``<service>-canary`` only: while the gate holds it,
requests to the apex still reach the primary's pods and requests to the canary Service reach the
new ones. The gate opens, the primary runs the new template, and still no route object exists.
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
from e2e.harness.release import ship, template_version

NAME = "podinfo"
#: Every kind of route object the controller can write, by (group, versions, plural).
ROUTE_KINDS = (
    ("split.smi-spec.io", ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"), "trafficsplits"),
    ("gateway.networking.k8s.io", ("v1",), "httproutes"),
)
#: Sampled one by one to see which pods a Service's requests reach.
PROBES = 10


@pytest.fixture
def gate() -> Iterator[Gate]:
    with serve_gate() as state:
        yield state


def _route_objects(kube: Kube) -> list[str]:
    found = []
    for group, versions, plural in ROUTE_KINDS:
        for version in versions:
            # A version the flavour does not serve answers 404 too: no object of it either.
            if kube.custom_object(group, version, plural, NAME) is not None:
                found.append(f"{plural}.{group}/{version}")
    return found


def _selector(kube: Kube, service: str) -> dict[str, Any]:
    return dict(kube.core.read_namespaced_service(service, kube.namespace).spec.selector or {})


def _pods_reached(env: Environment, kube: Kube, service: str) -> set[str]:
    return {env.mesh.client.send(kube.namespace, service).pod or "" for _ in range(PROBES)}


def test_kubernetes_provider_promotes_blue_green_without_a_route_object(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate,
) -> None:
    env.use_flavour("sdk")
    start_controller()
    ns = kube.namespace
    body = app.canary(NAME, ns, provider="kubernetes", metrics=[], webhooks=[
        {"name": "release-approval", "type": "confirm-promotion", "url": gate.url, "timeout": "2s"}])
    analysis = body["spec"]["analysis"]
    del analysis["stepWeight"], analysis["maxWeight"]
    analysis["iterations"] = 2
    kube.create(app.deployment(NAME, ns, annotations=app.behaviour("1"), replicas=1))
    kube.create(body)
    kube.wait_for_phase(NAME, "Initialized", timeout=90)
    assert _selector(kube, NAME) == {"app": f"{NAME}-primary"}
    assert _selector(kube, f"{NAME}-canary") == {"app": NAME}
    assert _route_objects(kube) == []

    ship(kube, NAME, "2")
    kube.wait_for_phase(NAME, "WaitingPromotion", timeout=90)
    assert template_version(kube.deployment(f"{NAME}-primary")) == "1"
    # The canary is reached through its own Service only; the apex stays on the primary.
    canary_pods = wait_for(lambda: _pods_reached(env, kube, f"{NAME}-canary"),
                           lambda pods: all(p.startswith(f"{NAME}-") and not p.startswith(f"{NAME}-primary-")
                                            for p in pods), timeout=30, what="the canary Service reaching the canary")
    apex_pods = _pods_reached(env, kube, NAME)
    assert all(p.startswith(f"{NAME}-primary-") for p in apex_pods), apex_pods
    assert kube.status(NAME)["phase"] == "WaitingPromotion", "the gate holds the release while sampling"
    assert canary_pods
    assert _route_objects(kube) == []

    gate.approved.set()
    final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=90)
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment(f"{NAME}-primary")) == "2"
    assert kube.deployment(NAME)["spec"]["replicas"] == 0
    assert _selector(kube, NAME) == {"app": f"{NAME}-primary"}
    assert _route_objects(kube) == []
    reasons = [e.get("reason") for e in kube.events(NAME)]
    assert "Promoting" in reasons and "Succeeded" in reasons, reasons
