from __future__ import annotations

import pytest

from canary.domain.providers import REFUSED_PROVIDERS
from canary.errors import RouterError, SpecError
from canary.routers.factory import PROVIDERS, ROUTE_RESOURCES, SMI_VERSIONS, choose_smi_version, router_for
from canary.routers.gatewayapi import HTTPRouteRouter
from canary.routers.smi import TrafficSplitRouter

LINKERD = frozenset({"v1alpha1", "v1alpha2"})
OSM = frozenset({"v1alpha2"})
TRAEFIK = frozenset({"v1alpha3"})
SDK = frozenset({"v1alpha4"})
EVERYTHING = frozenset(SMI_VERSIONS)
MESHES = {"linkerd": LINKERD, "osm": OSM, "traefik": TRAEFIK, "sdk": SDK, "everything": EVERYTHING}


def test_preference_is_newest_first() -> None:
    assert SMI_VERSIONS == ("v1alpha4", "v1alpha3", "v1alpha2", "v1alpha1")


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        pytest.param(LINKERD, "v1alpha2", id="linkerd"),
        pytest.param(OSM, "v1alpha2", id="osm"),
        pytest.param(TRAEFIK, "v1alpha3", id="traefik"),
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
        pytest.param("smi", TRAEFIK, TrafficSplitRouter("v1alpha3"), id="smi-traefik"),
        pytest.param("smi", SDK, TrafficSplitRouter("v1alpha4"), id="smi-sdk"),
        pytest.param("smi:v1alpha1", LINKERD, TrafficSplitRouter("v1alpha1"), id="pinned-v1alpha1-linkerd"),
        pytest.param("smi:v1alpha2", LINKERD, TrafficSplitRouter("v1alpha2"), id="pinned-v1alpha2-linkerd"),
        pytest.param("smi:v1alpha3", TRAEFIK, TrafficSplitRouter("v1alpha3"), id="pinned-v1alpha3-traefik"),
        pytest.param("smi:v1alpha4", SDK, TrafficSplitRouter("v1alpha4"), id="pinned-v1alpha4-sdk"),
        pytest.param("gatewayapi", frozenset(), HTTPRouteRouter(), id="gatewayapi-without-smi"),
        pytest.param("gatewayapi", LINKERD, HTTPRouteRouter(), id="gatewayapi-with-smi"),
    ],
)
def test_router_for(provider: str, served: frozenset[str], expected: object) -> None:
    assert router_for(provider, served) == expected


@pytest.mark.parametrize(
    ("provider", "served"),
    [
        pytest.param("smi", frozenset(), id="smi-nothing-served"),
        pytest.param("smi:v1alpha1", OSM, id="pinned-not-served"),
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
                                "gatewayapi:v1", "gatewayapi:v1beta1", "linkerd", "osm")


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
    assert isinstance(router_for(provider, ()), HTTPRouteRouter)


def test_route_resources_cover_every_router() -> None:
    written = {router_for(p, EVERYTHING).resource for p in PROVIDERS}
    assert set(ROUTE_RESOURCES) == written
    assert len(ROUTE_RESOURCES) == len(written) == 5
