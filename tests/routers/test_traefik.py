"""``provider: traefik``: the weighted TraefikService, read back, refusals and discovery."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from canary.domain.observed import Problem
from canary.domain.providers import PROVIDERS, REFUSED_PROVIDERS, RouterKind, parse_provider
from canary.domain.spec import parse_canary_spec
from canary.errors import RouterError
from canary.routers.base import RouteOptions, RouteTarget, Weights
from canary.routers.factory import (
    ROUTE_RESOURCES,
    WATCHED_ROUTES,
    companion_groups,
    discovery_group,
    route_options_problem,
    router_for,
    router_options_problem,
)
from canary.routers.traefik import TraefikServiceRouter
from tests.crds.schema_validator import CustomResourceValidator, load_yaml_documents

OWNER = {
    "apiVersion": "canary.dev/v1",
    "kind": "Canary",
    "name": "podinfo",
    "uid": "0b6f2c1e-0000-4000-8000-000000000001",
    "controller": True,
    "blockOwnerDeletion": True,
}
LABELS = {"app.kubernetes.io/managed-by": "canary"}
TARGET = RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary",
                     port=9898, owner=OWNER, labels=LABELS)
ROUTER = TraefikServiceRouter()
#: Every canary weight a release can ask for, both ends included.
CANARY_WEIGHTS = [0, 1, 5, 10, 33, 50, 67, 90, 99, 100]


def _expected(primary: int, canary: int) -> dict[str, Any]:
    services = [{"name": "podinfo-primary", "port": 9898, "weight": primary},
                {"name": "podinfo-canary", "port": 9898, "weight": canary}]
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": LABELS, "ownerReferences": [OWNER]},
        "spec": {"weighted": {"services": [s for s in services if s["weight"] > 0]}},
    }


# --- build and read -----------------------------------------------------------------------


@pytest.mark.parametrize("canary", CANARY_WEIGHTS)
def test_build_writes_the_weights_as_integer_percentages(canary: int) -> None:
    body = ROUTER.build(TARGET, Weights.canary_at(canary))
    assert body == _expected(100 - canary, canary)
    assert all(type(s["weight"]) is int and type(s["port"]) is int for s in body["spec"]["weighted"]["services"])


def test_a_zero_weight_backend_is_left_out_so_an_idle_canary_cannot_break_the_service() -> None:
    at_rest = ROUTER.build(TARGET, Weights.canary_at(0))["spec"]
    assert at_rest == {"weighted": {"services": [{"name": "podinfo-primary", "port": 9898, "weight": 100}]}}
    all_canary = ROUTER.build(TARGET, Weights.canary_at(100))["spec"]
    assert all_canary == {"weighted": {"services": [{"name": "podinfo-canary", "port": 9898, "weight": 100}]}}


@pytest.mark.parametrize("canary", CANARY_WEIGHTS)
def test_read_returns_what_build_wrote(canary: int) -> None:
    weights = Weights.canary_at(canary)
    assert ROUTER.read_weights(TARGET, ROUTER.build(TARGET, weights)) == weights


def test_an_object_without_owner_or_labels_has_only_name_and_namespace() -> None:
    bare = RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary", port=80)
    assert ROUTER.build(bare, Weights.canary_at(20))["metadata"] == {"name": "podinfo", "namespace": "test"}


def _with_services(*services: dict[str, Any], **weighted: Any) -> dict[str, Any]:
    return {"spec": {"weighted": {"services": list(services), **weighted}}}


PRIMARY = {"name": "podinfo-primary", "port": 9898}
CANARY = {"name": "podinfo-canary", "port": 9898}


@pytest.mark.parametrize(("obj", "expected"), [
    pytest.param(_with_services({**CANARY, "weight": 25}, {**PRIMARY, "weight": 75}), Weights(75, 25),
                 id="any-order"),
    pytest.param(_with_services({**PRIMARY, "weight": 9}, {**CANARY, "weight": 1}), Weights(90, 10),
                 id="relative-weights"),
    pytest.param(_with_services({**PRIMARY, "weight": 2, "kind": "Service", "namespace": "test"},
                                {**CANARY, "weight": 2}), Weights(50, 50), id="traefik-defaults-spelt-out"),
    pytest.param(_with_services(PRIMARY, CANARY), Weights(50, 50), id="missing-weights-are-1"),
    pytest.param(_with_services({**PRIMARY, "weight": 3}), Weights(100, 0), id="primary-only"),
])
def test_read_accepts_what_routes_the_same_requests(obj: dict[str, Any], expected: Weights) -> None:
    assert ROUTER.read_weights(TARGET, obj) == expected


@pytest.mark.parametrize("obj", [
    pytest.param({}, id="no-spec"),
    pytest.param({"spec": {"mirroring": {"name": "podinfo-primary", "port": 9898}}}, id="mirroring"),
    pytest.param(_with_services(), id="no-services"),
    pytest.param(_with_services({**PRIMARY, "weight": 0}, {**CANARY, "weight": 0}), id="all-zero"),
    # Traefik drops a TraefikService naming a Service without endpoints: not what build writes.
    pytest.param(_with_services({**PRIMARY, "weight": 100}, {**CANARY, "weight": 0}), id="zero-weight-canary"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "weight": 10}, {**CANARY, "weight": 10}),
                 id="repeated-backend"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {"name": "other", "port": 9898, "weight": 10}),
                 id="unknown-backend"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "port": 80, "weight": 10}), id="other-port"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "port": "9898", "weight": 10}),
                 id="port-as-text"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "namespace": "other", "weight": 10}),
                 id="other-namespace"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "kind": "TraefikService", "weight": 10}),
                 id="a-traefik-service-backend"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "weight": "10"}), id="weight-as-text"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "weight": True}), id="weight-as-bool"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "weight": -1}), id="negative-weight"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "weight": 10, "scheme": "h2c"}),
                 id="backend-option"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, {**CANARY, "weight": 10},
                                sticky={"cookie": {"name": "pin"}}), id="sticky-cookie"),
    pytest.param({"spec": {"weighted": {"services": [{**PRIMARY, "weight": 90}, {**CANARY, "weight": 10}]},
                           "mirroring": {"name": "x"}}}, id="extra-spec-key"),
    pytest.param(_with_services({**PRIMARY, "weight": 90}, "podinfo-canary"), id="backend-not-an-object"),  # type: ignore[arg-type]
])
def test_read_refuses_anything_else(obj: dict[str, Any]) -> None:
    assert ROUTER.read_weights(TARGET, obj) is None


def test_read_ignores_metadata_and_status() -> None:
    found = ROUTER.build(TARGET, Weights.canary_at(30))
    found["metadata"] = {"name": "podinfo", "namespace": "test", "resourceVersion": "7", "labels": {"x": "y"}}
    found["status"] = {"anything": True}
    assert ROUTER.read_weights(TARGET, found) == Weights(70, 30)


# --- what a TraefikService cannot carry ----------------------------------------------------


def _options(service: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None) -> RouteOptions:
    return RouteOptions.of(parse_canary_spec({
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898, **(service or {})},
        "analysis": {"interval": "1m", "threshold": 2, **(analysis or {"stepWeight": 10})},
    }))


#: One Canary per route option, with the part of the message saying why and what to use instead.
REFUSED = {
    "spec.analysis.match": (_options(analysis={"iterations": 3, "match": [{"headers": {"x-a": {"exact": "1"}}}]}),
                            "A/B conditions are the IngressRoute's match rule"),
    "spec.analysis.mirror": (_options(analysis={"iterations": 3, "mirror": True, "mirrorWeight": 20}),
                             "Traefik mirrors with a separate mirroring TraefikService"),
    "spec.analysis.sessionAffinity": (_options(analysis={"stepWeight": 10, "sessionAffinity": {"cookieName": "c"}}),
                                      "Traefik's sticky cookie pins a client to whichever backend served it first"),
    "spec.service.gatewayRefs": (_options({"gatewayRefs": [{"name": "public"}]}),
                                 "your IngressRoute references it (kind: TraefikService"),
    "spec.service.hosts": (_options({"hosts": ["app.example.com"]}), "matched by your IngressRoute's rule"),
    "spec.service.timeout": (_options({"timeout": "30s"}), "respondingTimeouts"),
    "spec.service.backendTimeout": (_options({"backendTimeout": "10s"}), "respondingTimeouts"),
    "spec.service.headers": (_options({"headers": {"request": {"set": {"x-a": "1"}}}}), "a Headers middleware"),
    "spec.service.rewrite": (_options({"rewrite": {"uri": "/v2"}}), "a ReplacePath or Headers middleware"),
}


@pytest.mark.parametrize("field", list(REFUSED))
def test_every_route_option_is_refused_by_name_with_what_to_use_instead(field: str) -> None:
    options, why = REFUSED[field]
    problem = route_options_problem("traefik", options)
    assert problem is not None
    assert (problem.field, problem.reason) == (field, "InvalidSpec")
    assert problem.message.startswith(
        f"{field} is not applied with spec.provider 'traefik', which writes a TraefikService carrying only the "
        "weights of the split (as Flagger's traefik router does): ")
    assert why in problem.message
    assert problem.message.endswith(
        f"Remove {field}, or set spec.provider: gatewayapi to route with a Gateway API HTTPRoute through Traefik's "
        "Gateway (spec.service.gatewayRefs), which applies them")


def test_a_refusal_lists_every_option_set_and_names_the_first() -> None:
    options = _options({"hosts": ["a.example.com"], "timeout": "5s"}, {"iterations": 2, "mirror": True})
    problem = route_options_problem("traefik", options)
    assert problem is not None and problem.field == "spec.service.hosts"
    assert problem.message.startswith("spec.service.hosts, spec.service.timeout, spec.analysis.mirror are not applied")


@pytest.mark.parametrize("analysis", [
    pytest.param({"stepWeight": 10, "maxWeight": 50}, id="canary"),
    pytest.param({"stepWeights": [1, 20, 80]}, id="step-weights"),
    pytest.param({"iterations": 5}, id="blue-green"),
])
def test_a_plain_split_is_not_refused_and_needs_no_companion(analysis: dict[str, Any]) -> None:
    options = _options(analysis=analysis)
    assert route_options_problem("traefik", options) is None
    router = router_for("traefik", {"v1alpha1"})
    assert companion_groups(router, options) == ()
    assert router_options_problem(router, options, {}) is None


@pytest.mark.parametrize("field", list(REFUSED))
def test_build_refuses_an_option_the_factory_would_have_refused(field: str) -> None:
    target = RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary",
                         port=9898, options=REFUSED[field][0], revision="abc")
    with pytest.raises(RouterError, match=f"a TraefikService cannot apply {field}"):
        ROUTER.build(target, Weights.canary_at(10))


def test_build_refuses_the_experiment_stage() -> None:
    with pytest.raises(RouterError, match=r"cannot route the experiment stage \(100/0\+experiment\)"):
        ROUTER.build(TARGET, Weights(100, 0, experiment=True))


# --- registration and discovery ------------------------------------------------------------


def test_traefik_is_a_provider_flagger_users_keep() -> None:
    provider = parse_provider("traefik")
    assert provider == PROVIDERS["traefik"] and provider.router is RouterKind.TRAEFIK
    assert "traefik" not in REFUSED_PROVIDERS
    assert "TraefikService" in provider.note and "IngressRoute" in provider.note


def test_the_factory_discovers_traefik_io_and_writes_the_traefik_service() -> None:
    assert discovery_group("traefik") == "traefik.io"
    router = router_for("traefik", {"v1alpha1"})
    assert router == TraefikServiceRouter()
    assert router.resource is not None
    assert router.resource.api_version == "traefik.io/v1alpha1" and router.resource.kind == "TraefikService"
    assert router.resource in ROUTE_RESOURCES
    assert ("traefik.io", "traefikservices") in WATCHED_ROUTES


@pytest.mark.parametrize(("served", "shown"), [
    pytest.param(set(), "", id="not-installed"),
    pytest.param({"v1alpha2"}, " (it serves traefik.io v1alpha2)", id="other-version"),
])
def test_a_cluster_without_the_traefik_service_crd_is_told_how_to_install_it(served: set[str], shown: str) -> None:
    with pytest.raises(RouterError) as caught:
        router_for("traefik", served)
    message = str(caught.value)
    assert message.startswith(
        "spec.provider 'traefik' writes a TraefikService, and the cluster does not serve "
        f"traefikservices.traefik.io/v1alpha1{shown}: install Traefik's CRDs")
    assert "kubernetes-crd-definition-v1.yml" in message and "spec.provider to 'gatewayapi'" in message


# --- against Traefik's own CRD ---------------------------------------------------------------


def _traefik_crds() -> Path | None:
    """Traefik's CRD file: beside the e2e build of Traefik, or in the Go module cache it came from."""
    candidates = [
        *sorted((Path.home() / ".cache" / "canary-e2e").glob("traefik-v*/crds/traefik.yaml")),
        *sorted((Path.home() / "go" / "pkg" / "mod" / "github.com" / "traefik").glob(
            "traefik/v3@v*/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml")),
    ]
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def traefik_service_crd() -> CustomResourceValidator:
    path = _traefik_crds()
    if path is None:
        pytest.skip("Traefik's CRDs are not on this machine (make cluster-build builds Traefik and copies them)")
    crds = [d for d in load_yaml_documents(path) if d.get("metadata", {}).get("name") == "traefikservices.traefik.io"]
    assert len(crds) == 1, f"{path} has no traefikservices.traefik.io CRD"
    return CustomResourceValidator(crds[0])


@pytest.mark.parametrize("canary", CANARY_WEIGHTS)
def test_traefik_stores_what_the_router_writes_unchanged(traefik_service_crd: CustomResourceValidator,
                                                         canary: int) -> None:
    body = ROUTER.build(TARGET, Weights.canary_at(canary))
    admitted = traefik_service_crd.admit(copy.deepcopy(body))
    assert admitted.pruned == [], f"the API server would drop {admitted.pruned}"
    assert admitted.object == body, "nothing is defaulted or pruned, so a drift check sees no change"
    assert ROUTER.read_weights(TARGET, admitted.object) == Weights.canary_at(canary)
