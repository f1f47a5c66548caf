from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from canary.domain.observed import Problem
from canary.domain.providers import REFUSED_PROVIDERS
from canary.domain.route_spec import ParentRef
from canary.domain.spec import parse_canary_spec
from canary.errors import RouterError, SpecError
from canary.routers.factory import (
    PROVIDERS,
    ROUTE_RESOURCES,
    SMI_VERSIONS,
    WATCHED_ROUTES,
    choose_smi_version,
    companion_groups,
    discovery_group,
    route_options_problem,
    router_for,
    router_options_problem,
)
from canary.routers.gatewayapi import HTTPRouteRouter
from canary.routers.options import RouteOptions
from canary.routers.services import ServicesRouter
from canary.routers.smi import TrafficSplitRouter

LINKERD = frozenset({"v1alpha1", "v1alpha2"})
OSM = frozenset({"v1alpha2"})
#: Traefik Mesh's SMI (not Traefik's own TraefikService, which provider traefik writes).
TRAEFIK_MESH = frozenset({"v1alpha3"})
SDK = frozenset({"v1alpha4"})
EVERYTHING = frozenset(SMI_VERSIONS)
MESHES = {"linkerd": LINKERD, "osm": OSM, "traefik-mesh": TRAEFIK_MESH, "sdk": SDK, "everything": EVERYTHING}
GATEWAY = frozenset({"v1", "v1beta1"})
TRAEFIK_IO = frozenset({"v1alpha1"})
#: Every version of each route API, by the group discovery_group names.
SERVED = {"split.smi-spec.io": EVERYTHING, "gateway.networking.k8s.io": GATEWAY, "traefik.io": TRAEFIK_IO}


def test_preference_is_newest_first() -> None:
    assert SMI_VERSIONS == ("v1alpha4", "v1alpha3", "v1alpha2", "v1alpha1")


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        pytest.param(LINKERD, "v1alpha2", id="linkerd"),
        pytest.param(OSM, "v1alpha2", id="osm"),
        pytest.param(TRAEFIK_MESH, "v1alpha3", id="traefik-mesh"),
        pytest.param(SDK, "v1alpha4", id="sdk"),
        pytest.param(EVERYTHING, "v1alpha4", id="everything"),
        pytest.param(["v1alpha1"], "v1alpha1", id="only-v1alpha1"),
        pytest.param({"v1alpha1", "v1beta1"}, "v1alpha1", id="ignores-unknown-versions"),
    ],
)
def test_unpinned_picks_newest_served(served: frozenset[str], expected: str) -> None:
    assert choose_smi_version(served, None) == expected


# Every (mesh, pinned version) pair: served pins are honoured, others refused.
@pytest.mark.parametrize("pinned", [pytest.param(v, id=f"pin-{v}") for v in SMI_VERSIONS])
@pytest.mark.parametrize("mesh", list(MESHES))
def test_pinned_version_matrix(mesh: str, pinned: str) -> None:
    served = MESHES[mesh]
    if pinned in served:
        assert choose_smi_version(served, pinned) == pinned
        return
    with pytest.raises(RouterError) as caught:
        choose_smi_version(served, pinned)
    message = str(caught.value)
    assert "spec.provider" in message
    assert pinned in message
    for version in served:
        assert version in message


def test_pinned_not_served_suggests_what_is() -> None:
    with pytest.raises(RouterError, match=r"serves only v1alpha2, v1alpha1 .*'smi', 'smi:v1alpha2', 'smi:v1alpha1'"):
        choose_smi_version(LINKERD, "v1alpha4")


@pytest.mark.parametrize("pinned", [pytest.param(None, id="unpinned"), pytest.param("v1alpha2", id="pinned")])
@pytest.mark.parametrize("served", [pytest.param(frozenset(), id="set"), pytest.param((), id="tuple")])
def test_nothing_served_means_crd_not_installed(served: frozenset[str], pinned: str | None) -> None:
    with pytest.raises(RouterError, match="not installed") as caught:
        choose_smi_version(served, pinned)
    message = str(caught.value)
    assert "trafficsplits.split.smi-spec.io" in message
    assert "linkerd smi install" in message
    assert "gatewayapi" in message


def test_only_unknown_versions_served() -> None:
    with pytest.raises(RouterError, match="v1beta1"):
        choose_smi_version({"v1beta1"}, None)


def test_unknown_pinned_version_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        choose_smi_version(EVERYTHING, "v1beta1")
    assert caught.value.field == "spec.provider"


@pytest.mark.parametrize(
    ("provider", "served", "expected"),
    [
        pytest.param("smi", LINKERD, TrafficSplitRouter("v1alpha2"), id="smi-linkerd"),
        pytest.param("smi", OSM, TrafficSplitRouter("v1alpha2"), id="smi-osm"),
        pytest.param("smi", TRAEFIK_MESH, TrafficSplitRouter("v1alpha3"), id="smi-traefik-mesh"),
        pytest.param("smi", SDK, TrafficSplitRouter("v1alpha4"), id="smi-sdk"),
        pytest.param("smi:v1alpha1", LINKERD, TrafficSplitRouter("v1alpha1"), id="pinned-v1alpha1-linkerd"),
        pytest.param("smi:v1alpha2", LINKERD, TrafficSplitRouter("v1alpha2"), id="pinned-v1alpha2-linkerd"),
        pytest.param("smi:v1alpha3", TRAEFIK_MESH, TrafficSplitRouter("v1alpha3"), id="pinned-v1alpha3-traefik-mesh"),
        pytest.param("smi:v1alpha4", SDK, TrafficSplitRouter("v1alpha4"), id="pinned-v1alpha4-sdk"),
        pytest.param("gatewayapi", GATEWAY, HTTPRouteRouter(), id="gatewayapi-v1"),
        pytest.param("gatewayapi", frozenset({"v1"}), HTTPRouteRouter(), id="gatewayapi-only-v1"),
    ],
)
def test_router_for(provider: str, served: frozenset[str], expected: object) -> None:
    assert router_for(provider, served) == expected


@pytest.mark.parametrize(
    ("provider", "served"),
    [
        pytest.param("smi", frozenset(), id="smi-nothing-served"),
        pytest.param("smi:v1alpha1", OSM, id="pinned-not-served"),
        pytest.param("gatewayapi", frozenset(), id="gatewayapi-nothing-served"),
        pytest.param("gatewayapi", frozenset({"v1beta1"}), id="gatewayapi-only-v1beta1"),
    ],
)
def test_router_for_cluster_errors(provider: str, served: frozenset[str]) -> None:
    with pytest.raises(RouterError):
        router_for(provider, served)


@pytest.mark.parametrize(
    "provider",
    [
        pytest.param("", id="empty"),
        pytest.param("SMI", id="wrong-case"),
        pytest.param("smi:", id="empty-version"),
        pytest.param("smi:v1beta1", id="unknown-version"),
        pytest.param("smi:v1alpha2 ", id="trailing-blank"),
        pytest.param("gateway-api", id="misspelt-gateway"),
    ],
)
def test_unknown_provider(provider: str) -> None:
    with pytest.raises(SpecError) as caught:
        router_for(provider, EVERYTHING)
    assert caught.value.field == "spec.provider"
    for allowed in PROVIDERS:
        assert repr(allowed) in caught.value.message


def test_providers() -> None:
    assert tuple(PROVIDERS) == ("smi", "smi:v1alpha4", "smi:v1alpha3", "smi:v1alpha2", "smi:v1alpha1", "gatewayapi",
                                "gatewayapi:v1", "gatewayapi:v1beta1", "linkerd", "osm", "traefik", "kubernetes")


@pytest.mark.parametrize("provider", sorted(REFUSED_PROVIDERS))
def test_a_refused_provider_is_named_with_what_to_use_instead(provider: str) -> None:
    with pytest.raises(SpecError) as caught:
        router_for(provider, EVERYTHING)
    assert caught.value.field == "spec.provider"
    assert caught.value.message.startswith(f"{provider!r} is refused: ")
    assert "spec.provider: gatewayapi" in caught.value.message or "spec.provider: smi" in caught.value.message


@pytest.mark.parametrize("provider, version", [("linkerd", "v1alpha4"), ("osm", "v1alpha4")])
def test_flagger_mesh_names_write_a_traffic_split(provider: str, version: str) -> None:
    router = router_for(provider, EVERYTHING)
    assert isinstance(router, TrafficSplitRouter) and router.version == version


@pytest.mark.parametrize("provider", ["gatewayapi:v1", "gatewayapi:v1beta1"])
def test_flagger_gateway_api_versions_write_the_v1_route(provider: str) -> None:
    assert isinstance(router_for(provider, GATEWAY), HTTPRouteRouter)


def test_route_resources_cover_every_router() -> None:
    routers = [router_for(p, SERVED[group] if (group := discovery_group(p)) else ()) for p in PROVIDERS]
    routers += [router_for(f"smi:{v}", EVERYTHING) for v in SMI_VERSIONS]
    written = {r.resource for r in routers if r.resource} | {c for r in routers for c in r.companion_resources}
    assert set(ROUTE_RESOURCES) == written
    # Four TrafficSplit versions, the HTTPRouteGroups of the two with matches, one HTTPRoute,
    # one TraefikService.
    assert len(ROUTE_RESOURCES) == len(written) == 8


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "kubernetes"])
def test_discovery_group_is_the_group_of_the_router_written(provider: str) -> None:
    group = discovery_group(provider)
    assert group is not None
    resource = router_for(provider, SERVED[group]).resource
    assert resource is not None and resource.group == group


def test_kubernetes_needs_no_discovery_and_writes_no_route_object() -> None:
    assert discovery_group("kubernetes") is None
    router = router_for("kubernetes", ())
    assert isinstance(router, ServicesRouter)
    assert router.resource is None and router.companion_resources == ()


def test_discovery_group_of_an_unknown_provider_names_the_field() -> None:
    with pytest.raises(SpecError) as caught:
        discovery_group("istio")
    assert caught.value.field == "spec.provider"


def test_watched_routes_name_each_route_kind_once() -> None:
    assert WATCHED_ROUTES == (("split.smi-spec.io", "trafficsplits"), ("specs.smi-spec.io", "httproutegroups"),
                              ("gateway.networking.k8s.io", "httproutes"), ("traefik.io", "traefikservices"))


def _options(service: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None) -> RouteOptions:
    return RouteOptions.of(parse_canary_spec({
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898, **(service or {})},
        "analysis": {"interval": "1m", "threshold": 2, **(analysis or {"stepWeight": 10})},
    }))


# One Canary per route option, as Flagger users write it.
ROUTE_OPTIONS = {
    "spec.service.gatewayRefs": _options({"gatewayRefs": [{"name": "public"}]}),
    "spec.service.hosts": _options({"hosts": ["app.example.com"]}),
    "spec.service.timeout": _options({"timeout": "30s"}),
    "spec.service.backendTimeout": _options({"backendTimeout": "10s"}),
    "spec.service.headers": _options({"headers": {"request": {"set": {"x-a": "1"}}}}),
    "spec.service.rewrite": _options({"rewrite": {"uri": "/v2"}}),
    "spec.analysis.match": _options(analysis={"iterations": 3, "match": [{"headers": {"x-a": {"exact": "1"}}}]}),
    "spec.analysis.mirror": _options(analysis={"iterations": 3, "mirror": True, "mirrorWeight": 20}),
    "spec.analysis.sessionAffinity": _options(analysis={"stepWeight": 10, "sessionAffinity": {"cookieName": "c"}}),
}
SMI_PROVIDERS = [p for p in PROVIDERS if discovery_group(p) == "split.smi-spec.io"]
GATEWAY_PROVIDERS = [p for p in PROVIDERS if discovery_group(p) == "gateway.networking.k8s.io"]


@pytest.mark.parametrize("provider", SMI_PROVIDERS)
@pytest.mark.parametrize("field", [f for f in ROUTE_OPTIONS if f != "spec.analysis.match"])
def test_an_smi_provider_refuses_every_route_option_but_match_by_name(field: str, provider: str) -> None:
    problem = route_options_problem(provider, ROUTE_OPTIONS[field])
    assert problem == Problem(
        field, "InvalidSpec",
        f"{field} is applied only with spec.provider: gatewayapi (an HTTPRoute); spec.provider {provider!r} "
        f"writes an SMI TrafficSplit, which carries only weights and A/B header matches. Set spec.provider: "
        f"gatewayapi, or remove {field}",
    )


@pytest.mark.parametrize("provider", SMI_PROVIDERS)
def test_an_smi_provider_takes_header_matches_before_the_version_is_known(provider: str) -> None:
    assert route_options_problem(provider, ROUTE_OPTIONS["spec.analysis.match"]) is None


@pytest.mark.parametrize("provider", SMI_PROVIDERS)
def test_an_smi_provider_refuses_query_parameter_matches_by_name(provider: str) -> None:
    options = _options(analysis={"iterations": 3, "match": [
        {"headers": {"x-a": {"exact": "1"}}}, {"queryParams": {"beta": {"exact": "on"}}}]})
    problem = route_options_problem(provider, options)
    assert problem is not None
    assert (problem.field, problem.reason) == ("spec.analysis.match[1].queryParams", "InvalidSpec")
    assert problem.message.startswith(
        "spec.analysis.match[1].queryParams: spec.provider " + repr(provider) + " does A/B testing with an SMI "
        "HTTPRouteGroup, which matches headers (cookies as the cookie header) but not query parameters")


SPECS = "specs.smi-spec.io"
MATCH = ROUTE_OPTIONS["spec.analysis.match"]


@pytest.mark.parametrize("version", ["v1alpha1", "v1alpha2"])
def test_match_with_a_traffic_split_without_matches_is_refused_naming_the_version(version: str) -> None:
    router = router_for("smi", {version})
    problem = router_options_problem(router, MATCH, {})
    assert problem is not None
    assert (problem.field, problem.reason) == ("spec.analysis.match", "InvalidSpec")
    assert (f"needs TrafficSplit v1alpha4 or v1alpha3, whose spec.matches names an HTTPRouteGroup; the "
            f"TrafficSplit written here is {version}, which has no matches") in problem.message


@pytest.mark.parametrize(("version", "specs"), [("v1alpha4", "v1alpha4"), ("v1alpha3", "v1alpha3")])
def test_match_needs_the_route_group_version_paired_with_the_split(version: str, specs: str) -> None:
    router = router_for("smi", {version})
    assert router_options_problem(router, MATCH, {SPECS: [specs]}) is None
    other = "v1alpha3" if specs == "v1alpha4" else "v1alpha4"
    for served in ({}, {SPECS: [other]}):
        problem = router_options_problem(router, MATCH, served)
        assert problem is not None and (problem.field, problem.reason) == ("spec.analysis.match", "RouterUnavailable")
        assert f"the cluster does not serve httproutegroups.specs.smi-spec.io/{specs}" in problem.message


@pytest.mark.parametrize("provider", [*SMI_PROVIDERS, *GATEWAY_PROVIDERS])
def test_without_match_the_chosen_router_refuses_nothing_and_needs_no_discovery(provider: str) -> None:
    router = router_for(provider, SERVED[discovery_group(provider)])
    assert companion_groups(router, _options()) == ()
    assert router_options_problem(router, _options(), {}) is None


@pytest.mark.parametrize(("version", "groups"), [
    ("v1alpha4", (SPECS,)), ("v1alpha3", (SPECS,)), ("v1alpha2", ()), ("v1alpha1", ())])
def test_match_needs_the_route_group_discovered_only_where_the_split_can_name_one(
        version: str, groups: tuple[str, ...]) -> None:
    assert companion_groups(router_for("smi", {version}), MATCH) == groups
    assert companion_groups(router_for("gatewayapi", GATEWAY), MATCH) == ()


def test_an_smi_refusal_lists_every_option_set() -> None:
    options = _options({"hosts": ["a.example.com"], "timeout": "5s"}, {"iterations": 2, "mirror": True})
    problem = route_options_problem("linkerd", options)
    assert problem is not None and problem.field == "spec.service.hosts"
    assert problem.message.startswith(
        "spec.service.hosts, spec.service.timeout, spec.analysis.mirror are applied only with spec.provider: gatewayapi")


@pytest.mark.parametrize("provider", [*SMI_PROVIDERS, *GATEWAY_PROVIDERS])
def test_without_route_options_no_provider_refuses(provider: str) -> None:
    assert route_options_problem(provider, _options()) is None


@pytest.mark.parametrize("provider", GATEWAY_PROVIDERS)
@pytest.mark.parametrize("field", list(ROUTE_OPTIONS))
def test_the_gateway_api_applies_every_route_option(field: str, provider: str) -> None:
    options = ROUTE_OPTIONS[field]
    if field == "spec.service.hosts":  # hostnames need a Gateway to mean anything (see below)
        options = dataclasses.replace(options, parent_refs=(ParentRef("public"),))
    assert route_options_problem(provider, options) is None


@pytest.mark.parametrize(("service", "field", "shown"), [
    ({"timeout": "1.5ms"}, "spec.service.timeout", "1.5ms"),
    ({"timeout": "2s", "backendTimeout": "1.25ms"}, "spec.service.backendTimeout", "1.25ms"),
])
def test_the_gateway_api_refuses_a_timeout_it_cannot_write(service: dict[str, Any], field: str, shown: str) -> None:
    problem = route_options_problem("gatewayapi", _options(service))
    assert problem is not None
    assert (problem.field, problem.reason) == (field, "InvalidSpec")
    assert problem.message.startswith(f"{field}: {shown} is not a whole number of milliseconds")


@pytest.mark.parametrize("refs", [
    pytest.param([], id="no-gateway-refs"),
    pytest.param([{"name": "podinfo", "group": "", "kind": "Service"}], id="a-service-parent"),
])
def test_hosts_on_a_route_attached_to_a_service_are_refused(refs: list[dict[str, Any]]) -> None:
    problem = route_options_problem("gatewayapi", _options({"hosts": ["app.example.com"], "gatewayRefs": refs}))
    assert problem is not None
    assert (problem.field, problem.reason) == ("spec.service.hosts", "InvalidSpec")
    assert "meshes ignore its hostnames; set spec.service.gatewayRefs to the Gateway" in problem.message


def test_hosts_with_a_gateway_among_the_parents_are_applied() -> None:
    refs = [{"name": "podinfo", "group": "", "kind": "Service"}, {"name": "public"}]
    assert route_options_problem("gatewayapi", _options({"hosts": ["app.example.com"], "gatewayRefs": refs})) is None
