"""The e2e mesh CRDs: well formed for a Kubernetes 1.34 API server, grouped into the flavours the
meshes ship, and accepting exactly what the controller's routers write."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import FrozenInstanceError
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from kubernetes import client

from canary.routers.base import RouteTarget, Weights
from canary.routers.gatewayapi import HTTPRouteRouter
from canary.routers.quantity import parse_weight
from canary.domain.providers import SMI_VERSIONS
from canary.routers.smi import TrafficSplitRouter
from e2e.crds import (
    CRD_ROOT,
    FLAVOURS,
    HTTPROUTE_CRD,
    HTTPROUTEGROUP_CRD,
    TRAFFICSPLIT_CRD,
    Flavour,
    UnknownFlavourError,
    all_mesh_crd_names,
    crd_names,
    flavour_crds,
    flavour_manifests,
    load_manifest,
)
from e2e.crds.install import CRDInstallError, KubernetesCRDStore, apply_flavour, switch_flavour
from e2e.processes import E2ESetupError, free_port
from tests.crds.schema_validator import (
    CustomResourceValidator,
    Invalid,
    iter_schema,
    load_yaml_documents,
    to_json_schema,
)

ALL_FILES = sorted(CRD_ROOT.glob("*/*.yaml"))
SMI_FLAVOURS = [name for name, flavour in FLAVOURS.items() if flavour.trafficsplit_versions]
#: The HTTPRouteGroup version each SMI flavour carries (see the comments in the files for why).
ROUTEGROUP_VERSIONS = {"linkerd": "v1alpha1", "osm": "v1alpha4", "traefik": "v1alpha3", "sdk": "v1alpha4"}
EXPECTED_NAMES = {
    TRAFFICSPLIT_CRD: ("split.smi-spec.io", "TrafficSplit", "trafficsplits", "trafficsplit", ["ts"]),
    HTTPROUTEGROUP_CRD: ("specs.smi-spec.io", "HTTPRouteGroup", "httproutegroups", "httproutegroup", None),
    HTTPROUTE_CRD: ("gateway.networking.k8s.io", "HTTPRoute", "httproutes", "httproute", None),
}
#: Keywords a structural schema may use (apiextensions.k8s.io/v1 JSONSchemaProps); a misspelt one
#: would be refused by the API server under strict field validation, or silently dropped.
SCHEMA_KEYWORDS = {
    "type", "format", "description", "properties", "items", "additionalProperties", "required",
    "default", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
    "maxLength", "minItems", "maxItems", "uniqueItems", "pattern", "multipleOf", "nullable", "anyOf",
    "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
    "x-kubernetes-embedded-resource",
}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}

TARGET = RouteTarget(
    namespace="test",
    apex="podinfo",
    primary="podinfo-primary",
    canary="podinfo-canary",
    port=9898,
    owner={"apiVersion": "canary.dev/v1alpha1", "kind": "Canary", "name": "podinfo", "uid": "u-1", "controller": True},
    labels={"app.kubernetes.io/managed-by": "canary"},
)
CANARY_WEIGHTS = [0, 1, 10, 33, 50, 99, 100]


# --- helpers -------------------------------------------------------------------------------


def crd_versions(crd: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {v["name"]: v for v in crd["spec"]["versions"]}


def served(crd: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(v["name"] for v in crd["spec"]["versions"] if v["served"])


def flavour_crd(flavour: str, crd_name: str) -> dict[str, Any] | None:
    return next((c for c in flavour_crds(flavour) if c["metadata"]["name"] == crd_name), None)


def version_validator(crd: Mapping[str, Any], version: str) -> CustomResourceValidator:
    """The repo's admission pipeline for one served version (it validates the storage version)."""
    doc = copy.deepcopy(dict(crd))
    for entry in doc["spec"]["versions"]:
        entry["storage"] = entry["name"] == version
    return CustomResourceValidator(doc)


def serving(crd_name: str, version: str) -> list[tuple[str, dict[str, Any]]]:
    """Every (flavour, CRD) that serves ``version`` of ``crd_name``."""
    out = []
    for name in FLAVOURS:
        crd = flavour_crd(name, crd_name)
        if crd is not None and version in served(crd):
            out.append((name, crd))
    return out


def every_schema() -> Iterator[tuple[str, Mapping[str, Any]]]:
    for path in ALL_FILES:
        crd = load_manifest(path)
        for version in crd["spec"]["versions"]:
            yield f"{path.parent.name}/{path.name}@{version['name']}", version["schema"]["openAPIV3Schema"]


SCHEMAS = list(every_schema())
SCHEMA_IDS = [label for label, _ in SCHEMAS]


# --- files and names -----------------------------------------------------------------------


def test_every_flavour_has_a_directory_and_nothing_else_is_there() -> None:
    dirs = sorted(p.name for p in CRD_ROOT.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert dirs == sorted(FLAVOURS)
    assert {p.parent.name for p in ALL_FILES} == set(FLAVOURS)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_file_holds_one_v1_crd_named_after_its_file(path: Path) -> None:
    docs = load_yaml_documents(path)
    assert len(docs) == 1
    crd = docs[0]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert path.name == f"{spec['group']}_{spec['names']['plural']}.yaml"
    assert crd["metadata"]["annotations"]["canary.dev/e2e-flavour"] == path.parent.name


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_names_scope_and_conversion(path: Path) -> None:
    crd = load_manifest(path)
    group, kind, plural, singular, short = EXPECTED_NAMES[crd["metadata"]["name"]]
    spec = crd["spec"]
    assert spec["group"] == group
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["listKind"] == f"{kind}List"
    assert spec["names"]["plural"] == plural
    assert spec["names"]["singular"] == singular
    assert spec["names"].get("shortNames") == short
    # The meshes ship no conversion webhook: an object comes back through every version unchanged.
    assert spec["conversion"] == {"strategy": "None"}


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_exactly_one_storage_version_and_it_is_served(path: Path) -> None:
    crd = load_manifest(path)
    storage = [v for v in crd["spec"]["versions"] if v["storage"]]
    assert len(storage) == 1
    assert storage[0]["served"] is True
    names = [v["name"] for v in crd["spec"]["versions"]]
    assert len(names) == len(set(names))


def test_protected_group_carries_the_approval_annotation() -> None:
    # The API server refuses a CRD in a *.k8s.io group without it.
    for path in ALL_FILES:
        crd = load_manifest(path)
        if crd["spec"]["group"].endswith((".k8s.io", ".kubernetes.io")):
            approval = crd["metadata"]["annotations"]["api-approved.kubernetes.io"]
            assert approval.startswith("https://"), path


def test_status_subresource_only_on_httproute() -> None:
    for path in ALL_FILES:
        crd = load_manifest(path)
        for version in crd["spec"]["versions"]:
            expected: dict[str, Any] | None = {"status": {}} if crd["metadata"]["name"] == HTTPROUTE_CRD else None
            assert version.get("subresources") == expected, (path, version["name"])


# --- structural schemas --------------------------------------------------------------------


@pytest.mark.parametrize(("label", "schema"), SCHEMAS, ids=SCHEMA_IDS)
def test_schema_is_structural(label: str, schema: Mapping[str, Any]) -> None:
    assert schema["type"] == "object"
    assert schema["properties"]["metadata"] == {"type": "object"}, "only type: object is allowed at metadata"
    for node, _spath, path in iter_schema(schema):
        where = f"{label}: {path or '<root>'}"
        unknown = set(node) - SCHEMA_KEYWORDS
        assert not unknown, f"{where}: not a schema keyword: {unknown}"
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, where
            assert node.get("anyOf", [{"type": "integer"}, {"type": "string"}]) == [
                {"type": "integer"}, {"type": "string"}
            ], where
        else:
            assert node.get("type") in TYPES, f"{where}: every node needs a type"
            assert "anyOf" not in node, f"{where}: anyOf is only for int-or-string here"
        assert not ("properties" in node and "additionalProperties" in node), where
        if node.get("type") == "array":
            assert isinstance(node.get("items"), Mapping), f"{where}: arrays need an items schema"
        if node.get("x-kubernetes-preserve-unknown-fields"):
            assert node.get("type") == "object", where
        if "required" in node:
            missing = set(node["required"]) - set(node.get("properties", {}))
            assert not missing, f"{where}: required but not declared: {missing}"


@pytest.mark.parametrize(("label", "schema"), SCHEMAS, ids=SCHEMA_IDS)
def test_defaults_are_valid_for_their_own_schema(label: str, schema: Mapping[str, Any]) -> None:
    # The API server refuses a CRD whose defaults fail its own validation.
    for node, _spath, path in iter_schema(schema):
        if "default" in node:
            jsonschema.validate(node["default"], to_json_schema(node))


@pytest.mark.parametrize(("label", "schema"), SCHEMAS, ids=SCHEMA_IDS)
def test_map_lists_have_required_scalar_keys(label: str, schema: Mapping[str, Any]) -> None:
    for node, _spath, path in iter_schema(schema):
        if node.get("x-kubernetes-list-type") == "map":
            items = node["items"]
            assert items["type"] == "object", path
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in items.get("required", []) or "default" in items["properties"][key], (path, key)
                assert items["properties"][key]["type"] in {"string", "integer", "boolean"}, (path, key)


@pytest.mark.parametrize(("label", "schema"), SCHEMAS, ids=SCHEMA_IDS)
def test_patterns_compile(label: str, schema: Mapping[str, Any]) -> None:
    for node, _spath, path in iter_schema(schema):
        if "pattern" in node:
            re.compile(node["pattern"])


def test_preserved_unknown_fields_only_in_gateway_filters() -> None:
    for label, schema in SCHEMAS:
        preserved = [path for node, _s, path in iter_schema(schema) if node.get("x-kubernetes-preserve-unknown-fields")]
        if "httproutes" in label:
            assert preserved == ["spec.rules[].filters[]", "spec.rules[].backendRefs[].filters[]"], label
        else:
            assert preserved == [], label


# --- flavours ------------------------------------------------------------------------------


def test_flavour_api() -> None:
    assert list(FLAVOURS) == ["linkerd", "osm", "traefik", "sdk", "gatewayapi"]
    linkerd = FLAVOURS["linkerd"]
    assert isinstance(linkerd, Flavour)
    assert linkerd.directory == CRD_ROOT / "linkerd"
    assert linkerd.storage_version == "v1alpha1"
    assert FLAVOURS["gatewayapi"].storage_version is None
    with pytest.raises(FrozenInstanceError):
        linkerd.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        FLAVOURS["new"] = linkerd  # type: ignore[index]
    assert flavour_manifests("gatewayapi") == [CRD_ROOT / "gatewayapi" / "gateway.networking.k8s.io_httproutes.yaml"]
    assert crd_names("linkerd") == [HTTPROUTEGROUP_CRD, TRAFFICSPLIT_CRD]
    assert crd_names("gatewayapi") == [HTTPROUTE_CRD]
    assert all_mesh_crd_names() == sorted([HTTPROUTEGROUP_CRD, HTTPROUTE_CRD, TRAFFICSPLIT_CRD])


def test_unknown_flavour_names_the_known_ones() -> None:
    with pytest.raises(UnknownFlavourError) as caught:
        flavour_manifests("istio")
    assert str(caught.value) == "unknown mesh CRD flavour 'istio'; known flavours: linkerd, osm, traefik, sdk, gatewayapi"
    with pytest.raises(KeyError):
        crd_names("istio")


@pytest.mark.parametrize(
    ("flavour", "versions", "storage"),
    [
        ("linkerd", ("v1alpha1", "v1alpha2"), "v1alpha1"),
        ("osm", ("v1alpha2",), "v1alpha2"),
        ("traefik", ("v1alpha3",), "v1alpha3"),
        ("sdk", ("v1alpha4",), "v1alpha4"),
    ],
)
def test_each_smi_flavour_serves_exactly_its_trafficsplit_versions(flavour: str, versions: tuple[str, ...], storage: str) -> None:
    crd = flavour_crd(flavour, TRAFFICSPLIT_CRD)
    assert crd is not None
    assert served(crd) == versions
    assert [v["name"] for v in crd["spec"]["versions"]] == list(versions), "no unserved versions either"
    assert [v["name"] for v in crd["spec"]["versions"] if v["storage"]] == [storage]
    assert FLAVOURS[flavour].trafficsplit_versions == versions
    assert FLAVOURS[flavour].has_httproute is False
    assert flavour_crd(flavour, HTTPROUTE_CRD) is None


@pytest.mark.parametrize("flavour", SMI_FLAVOURS)
def test_each_smi_flavour_carries_a_route_group_that_fits(flavour: str) -> None:
    crd = flavour_crd(flavour, HTTPROUTEGROUP_CRD)
    assert crd is not None
    assert served(crd) == (ROUTEGROUP_VERSIONS[flavour],)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    if any(v in {"v1alpha3", "v1alpha4"} for v in FLAVOURS[flavour].trafficsplit_versions):
        # A split's matches refer to route groups that filter on headers, which needs v1alpha3+.
        assert "headers" in schema["properties"]["spec"]["properties"]["matches"]["items"]["properties"]


def test_gatewayapi_flavour_is_httproute_only() -> None:
    flavour = FLAVOURS["gatewayapi"]
    assert flavour.has_httproute and flavour.trafficsplit_versions == ()
    assert crd_names("gatewayapi") == [HTTPROUTE_CRD]
    crd = flavour_crd("gatewayapi", HTTPROUTE_CRD)
    assert crd is not None
    assert served(crd) == ("v1", "v1beta1")
    assert [v["name"] for v in crd["spec"]["versions"] if v["storage"]] == ["v1"]
    v1, v1beta1 = crd["spec"]["versions"]
    assert v1["schema"] == v1beta1["schema"]


def test_a_version_has_the_same_schema_in_every_flavour() -> None:
    seen: dict[tuple[str, str], Any] = {}
    for flavour in FLAVOURS:
        for crd in flavour_crds(flavour):
            for version in crd["spec"]["versions"]:
                key = (crd["metadata"]["name"], version["name"])
                seen.setdefault(key, version["schema"])
                assert version["schema"] == seen[key], (flavour, key)


def test_every_trafficsplit_version_the_controller_writes_is_served_by_some_flavour() -> None:
    assert {v for name in SMI_FLAVOURS for v in FLAVOURS[name].trafficsplit_versions} == set(SMI_VERSIONS)


def test_manifests_load_without_shared_objects() -> None:
    # load_manifest unshares YAML anchors, so editing one version's schema leaves the other alone.
    crd = load_manifest(CRD_ROOT / "gatewayapi" / "gateway.networking.k8s.io_httproutes.yaml")
    v1, v1beta1 = crd["spec"]["versions"]
    assert v1["schema"] is not v1beta1["schema"]


# --- the controller's objects against these schemas ----------------------------------------


def _admit(crd: Mapping[str, Any], version: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    admitted = version_validator(crd, version).admit(obj)
    assert admitted.pruned == [], f"the API server would drop {admitted.pruned}"
    return admitted.object


@pytest.mark.parametrize("version", SMI_VERSIONS)
@pytest.mark.parametrize("canary", CANARY_WEIGHTS)
def test_trafficsplits_the_controller_writes_are_accepted_by_every_flavour_serving_them(version: str, canary: int) -> None:
    router = TrafficSplitRouter(version)
    weights = Weights.canary_at(canary)
    body = router.build(TARGET, weights)
    flavours = serving(TRAFFICSPLIT_CRD, version)
    assert flavours, f"no flavour serves TrafficSplit {version}"
    for _flavour, crd in flavours:
        stored = _admit(crd, version, body)
        assert stored == body, "nothing is defaulted or pruned, so a drift check sees no change"
        assert router.read_weights(TARGET, stored) == weights


@pytest.mark.parametrize("canary", CANARY_WEIGHTS)
def test_v1alpha1_weights_are_quantities(canary: int) -> None:
    body = TrafficSplitRouter("v1alpha1").build(TARGET, Weights.canary_at(canary))
    for backend in body["spec"]["backends"]:
        assert isinstance(backend["weight"], str)
        assert parse_weight(backend["weight"]) is not None


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
@pytest.mark.parametrize("canary", CANARY_WEIGHTS)
def test_httproutes_the_controller_writes_are_accepted(version: str, canary: int) -> None:
    router = HTTPRouteRouter()
    weights = Weights.canary_at(canary)
    body = router.build(TARGET, weights)
    assert body["apiVersion"] == "gateway.networking.k8s.io/v1"
    body["apiVersion"] = f"gateway.networking.k8s.io/{version}"
    crd = flavour_crd("gatewayapi", HTTPROUTE_CRD)
    assert crd is not None
    stored = _admit(crd, version, body)
    # Defaults fill in what the router leaves out; the router must still read its own weights.
    rule = stored["spec"]["rules"][0]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert [(r["group"], r["kind"]) for r in rule["backendRefs"]] == [("", "Service"), ("", "Service")]
    assert stored["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "podinfo", "port": 9898}]
    assert router.read_weights(TARGET, stored) == weights


# --- the schemas accept the specification's examples and refuse what meshes refuse ---------


def _split(version: str, weights: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": {"name": "ab", "namespace": "test"},
        "spec": {
            "service": "website",
            "backends": [{"service": f"website-v{i + 1}", "weight": w} for i, w in enumerate(weights)],
            **extra,
        },
    }


def _errors(crd: Mapping[str, Any], version: str, obj: Mapping[str, Any]) -> list[str]:
    try:
        version_validator(crd, version).admit(obj)
    except Invalid as exc:
        return [str(e) for e in exc.errors]
    return []


def test_v1alpha1_weight_takes_quantities_and_integers() -> None:
    crd = flavour_crd("linkerd", TRAFFICSPLIT_CRD)
    assert crd is not None
    assert _errors(crd, "v1alpha1", _split("v1alpha1", ["900m", "100m"])) == []
    assert _errors(crd, "v1alpha1", _split("v1alpha1", [900, 100])) == []
    assert _errors(crd, "v1alpha1", _split("v1alpha1", [0.5, 0.5])) != []


@pytest.mark.parametrize("version", ["v1alpha2", "v1alpha3", "v1alpha4"])
def test_later_versions_refuse_quantity_weights(version: str) -> None:
    # Why the router writes plain integers from v1alpha2 on.
    _name, crd = serving(TRAFFICSPLIT_CRD, version)[0]
    assert _errors(crd, version, _split(version, ["900m", "100m"])) != []


def test_v1alpha4_weight_is_not_negative() -> None:
    crd = flavour_crd("sdk", TRAFFICSPLIT_CRD)
    assert crd is not None
    assert _errors(crd, "v1alpha4", _split("v1alpha4", [-1, 101])) == [
        "spec.backends[0].weight: Invalid value: -1: should be greater than or equal to 0"
    ]


@pytest.mark.parametrize("version", list(SMI_VERSIONS))
def test_service_and_backends_are_required(version: str) -> None:
    _name, crd = serving(TRAFFICSPLIT_CRD, version)[0]
    obj = _split(version, [1])
    del obj["spec"]["service"]
    del obj["spec"]["backends"]
    assert sorted(set(_errors(crd, version, obj))) == ["spec.backends: Required value", "spec.service: Required value"]


@pytest.mark.parametrize("flavour", ["traefik", "sdk"])
def test_ab_split_with_route_group_matches(flavour: str) -> None:
    split_crd = flavour_crd(flavour, TRAFFICSPLIT_CRD)
    group_crd = flavour_crd(flavour, HTTPROUTEGROUP_CRD)
    assert split_crd is not None and group_crd is not None
    version = FLAVOURS[flavour].trafficsplit_versions[0]
    group_version = ROUTEGROUP_VERSIONS[flavour]
    split = _split(version, [0, 100], matches=[{"kind": "HTTPRouteGroup", "name": "ab-test"}])
    assert _admit(split_crd, version, split) == split
    group = {
        "apiVersion": f"specs.smi-spec.io/{group_version}",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "ab-test", "namespace": "test"},
        "spec": {
            "matches": [
                {"name": "firefox-users", "headers": {"user-agent": ".*Firefox.*"}},
                {"name": "api", "pathRegex": "/api/.*", "methods": ["GET", "HEAD"]},
            ]
        },
    }
    assert _admit(group_crd, group_version, group) == group


def test_v1alpha1_route_group_has_top_level_matches() -> None:
    crd = flavour_crd("linkerd", HTTPROUTEGROUP_CRD)
    assert crd is not None
    group = {
        "apiVersion": "specs.smi-spec.io/v1alpha1",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "the-routes", "namespace": "test"},
        "matches": [{"name": "metrics", "pathRegex": "/metrics", "methods": ["GET"]}],
    }
    assert _admit(crd, "v1alpha1", group) == group


def _httproute(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": spec,
    }


def _gateway_crd() -> dict[str, Any]:
    crd = flavour_crd("gatewayapi", HTTPROUTE_CRD)
    assert crd is not None
    return crd


def test_httproute_full_shape_is_accepted() -> None:
    route = _httproute(
        parentRefs=[{"group": "", "kind": "Service", "namespace": "test", "name": "podinfo", "port": 9898,
                     "sectionName": "http"}],
        hostnames=["podinfo.example.com", "*.example.com"],
        rules=[
            {
                "matches": [
                    {
                        "path": {"type": "Exact", "value": "/api"},
                        "headers": [{"name": "x-canary", "value": "always"}],
                        "queryParams": [{"type": "RegularExpression", "name": "v", "value": "2.*"}],
                        "method": "GET",
                    }
                ],
                "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}]}}],
                "backendRefs": [
                    {"group": "", "kind": "Service", "name": "podinfo-canary", "namespace": "test", "port": 9898,
                     "weight": 1_000_000, "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {}}]},
                ],
                "timeouts": {"request": "10s"},
            }
        ],
    )
    stored = _admit(_gateway_crd(), "v1", route)
    assert stored["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"] == {"set": [{"name": "a", "value": "b"}]}
    assert stored["spec"]["rules"][0]["matches"][0]["headers"][0]["type"] == "Exact"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        pytest.param(
            {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": 1_000_001}]}]},
            "spec.rules[0].backendRefs[0].weight: Invalid value: 1000001: should be less than or equal to 1000000",
            id="weight-too-big",
        ),
        pytest.param(
            {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": -1}]}]},
            "spec.rules[0].backendRefs[0].weight: Invalid value: -1: should be greater than or equal to 0",
            id="weight-negative",
        ),
        pytest.param(
            {"rules": [{"backendRefs": [{"name": "a"}]}]},
            "spec.rules[0].backendRefs[0]: Invalid value: \"object\": Must have port for Service reference",
            id="service-without-port",
        ),
        pytest.param(
            {"parentRefs": [{"kind": "Service", "name": "a", "port": 0}]},
            "spec.parentRefs[0].port: Invalid value: 0: should be greater than or equal to 1",
            id="parent-port-zero",
        ),
        pytest.param(
            {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "api"}}]}]},
            "spec.rules[0].matches[0].path: Invalid value: \"object\": value must be an absolute path and start "
            "with '/' when type one of ['Exact', 'PathPrefix']",
            id="relative-path",
        ),
        pytest.param(
            {"rules": [{"matches": [{"method": "FETCH"}]}]},
            'spec.rules[0].matches[0].method: Unsupported value: \'FETCH\': supported values: "GET", "HEAD", "POST", '
            '"PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"',
            id="unknown-method",
        ),
        pytest.param(
            {"rules": [{"matches": [{"headers": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]}]}]},
            'spec.rules[0].matches[0].headers[1]: Duplicate value: map["name":\'a\']',
            id="duplicate-header",
        ),
        pytest.param(
            {"rules": [{"filters": [{"requestRedirect": {}}]}]},
            "spec.rules[0].filters[0].type: Required value",
            id="filter-without-type",
        ),
    ],
)
def test_httproute_refusals(spec: dict[str, Any], error: str) -> None:
    assert _errors(_gateway_crd(), "v1", _httproute(**spec)) == [error]


def test_httproute_status_parents() -> None:
    route = _httproute(parentRefs=[{"group": "", "kind": "Service", "name": "podinfo", "port": 9898}])
    route["status"] = {
        "parents": [
            {
                "parentRef": {"group": "", "kind": "Service", "name": "podinfo", "port": 9898},
                "controllerName": "canary.dev/e2e-mesh",
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                     "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1},
                    {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "",
                     "lastTransitionTime": "2025-01-01T00:00:00Z"},
                ],
            }
        ]
    }
    assert _admit(_gateway_crd(), "v1", route)["status"] == route["status"]
    route["status"]["parents"][0]["controllerName"] = "no-slash"
    assert _errors(_gateway_crd(), "v1", route) != []


# --- switching flavours on a cluster ---------------------------------------------------------


class FakeCRDServer:
    """The CRD endpoints of an API server, as far as a flavour switch can tell them apart.

    It refuses what kube-apiserver refuses (an existing name on create, a stale resourceVersion,
    dropping a version still in ``status.storedVersions``), deletes only after a few polls (the
    server first removes every object of the kind) and establishes a new CRD one poll late.
    """

    def __init__(self, *, delete_polls: int = 2, establish_polls: int = 1) -> None:
        self.crds: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, str]] = []
        self._delete_polls = delete_polls
        self._establish_polls = establish_polls
        self._countdown: dict[str, int] = {}
        self._version = 0

    # What a CRDStore and the HTTP handler both call; each returns (HTTP status, body).

    def get(self, name: str) -> tuple[int, dict[str, Any]]:
        crd = self.crds.get(name)
        if crd is None:
            return 404, _status(404, "NotFound", f'customresourcedefinitions.apiextensions.k8s.io "{name}" not found')
        left = self._countdown.get(name, 0)
        if left > 0:
            self._countdown[name] = left - 1
        elif crd["metadata"].get("deletionTimestamp"):
            del self.crds[name]
            self.log.append(("gone", name))
            return self.get(name)
        else:
            conditions = crd["status"]["conditions"]
            if not any(c["type"] == "Established" for c in conditions):
                conditions.append({"type": "Established", "status": "True", "reason": "InitialNamesAccepted"})
        return 200, copy.deepcopy(crd)

    def create(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body["metadata"]["name"]
        if name in self.crds:
            return 409, _status(409, "AlreadyExists", f'customresourcedefinitions.apiextensions.k8s.io "{name}" already exists')
        problem = self._invalid(body, stored=[])
        if problem:
            return 422, _status(422, "Invalid", problem)
        crd = copy.deepcopy(dict(body))
        crd["metadata"]["resourceVersion"] = self._next_version()
        crd["status"] = {
            "storedVersions": [self._storage(crd)],
            "conditions": [{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"}],
        }
        self.crds[name] = crd
        self._countdown[name] = self._establish_polls
        self.log.append(("create", name))
        return 201, copy.deepcopy(crd)

    def replace(self, name: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        current = self.crds.get(name)
        if current is None:
            return 404, _status(404, "NotFound", f"{name} not found")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return 409, _status(409, "Conflict", f"the object {name} has been modified")
        problem = self._invalid(body, stored=current["status"]["storedVersions"])
        if problem:
            return 422, _status(422, "Invalid", problem)
        crd = copy.deepcopy(dict(body))
        crd["metadata"]["resourceVersion"] = self._next_version()
        stored = list(current["status"]["storedVersions"])
        if self._storage(crd) not in stored:
            stored.append(self._storage(crd))
        crd["status"] = {**current["status"], "storedVersions": stored}
        self.crds[name] = crd
        self.log.append(("replace", name))
        return 200, copy.deepcopy(crd)

    def delete(self, name: str) -> tuple[int, dict[str, Any]]:
        crd = self.crds.get(name)
        if crd is None:
            return 404, _status(404, "NotFound", f"{name} not found")
        if not crd["metadata"].get("deletionTimestamp"):
            crd["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
            self._countdown[name] = self._delete_polls
            self.log.append(("delete", name))
        return 200, copy.deepcopy(crd)

    def discovery(self) -> dict[tuple[str, str], set[str]]:
        """Served versions by (group, plural), for established CRDs not being deleted."""
        out: dict[tuple[str, str], set[str]] = {}
        for crd in self.crds.values():
            established = any(c["type"] == "Established" for c in crd["status"]["conditions"])
            if established and not crd["metadata"].get("deletionTimestamp"):
                key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
                out[key] = {v["name"] for v in crd["spec"]["versions"] if v["served"]}
        return out

    def served_versions(self, group: str, plural: str) -> set[str]:
        return self.discovery().get((group, plural), set())

    def _invalid(self, body: Mapping[str, Any], stored: list[str]) -> str | None:
        names = [v["name"] for v in body["spec"]["versions"]]
        if sum(1 for v in body["spec"]["versions"] if v["storage"]) != 1:
            return "spec.versions: Invalid value: must have exactly one version marked as storage version"
        for i, version in enumerate(stored):
            if version not in names:
                return (
                    f'status.storedVersions[{i}]: Invalid value: "{version}": missing from spec.versions; '
                    f"{version} was previously a storage version, and must remain in spec.versions until a "
                    f"storage migration ensures no data remains persisted in {version} and removes {version} "
                    "from status.storedVersions"
                )
        return None

    @staticmethod
    def _storage(crd: Mapping[str, Any]) -> str:
        return str(next(v["name"] for v in crd["spec"]["versions"] if v["storage"]))

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}


class FakeStore:
    """:class:`CRDStore` straight onto a :class:`FakeCRDServer`, raising as the real one does."""

    def __init__(self, server: FakeCRDServer) -> None:
        self.server = server

    def get(self, name: str) -> dict[str, Any] | None:
        status, body = self.server.get(name)
        return None if status == 404 else body

    def create(self, crd: Mapping[str, Any]) -> None:
        self._ok(*self.server.create(crd))

    def replace(self, crd: Mapping[str, Any]) -> None:
        self._ok(*self.server.replace(crd["metadata"]["name"], crd))

    def delete(self, name: str) -> None:
        self.server.delete(name)

    def served_versions(self, group: str, plural: str) -> set[str]:
        return self.server.served_versions(group, plural)

    @staticmethod
    def _ok(status: int, body: Mapping[str, Any]) -> None:
        if status >= 400:
            raise RuntimeError(f"HTTP {status}: {body['message']}")


def _served_now(server: FakeCRDServer) -> dict[str, set[str]]:
    return {f"{plural}.{group}": versions for (group, plural), versions in server.discovery().items()}


FLAVOUR_DISCOVERY = {
    "linkerd": {TRAFFICSPLIT_CRD: {"v1alpha1", "v1alpha2"}, HTTPROUTEGROUP_CRD: {"v1alpha1"}},
    "osm": {TRAFFICSPLIT_CRD: {"v1alpha2"}, HTTPROUTEGROUP_CRD: {"v1alpha4"}},
    "traefik": {TRAFFICSPLIT_CRD: {"v1alpha3"}, HTTPROUTEGROUP_CRD: {"v1alpha3"}},
    "sdk": {TRAFFICSPLIT_CRD: {"v1alpha4"}, HTTPROUTEGROUP_CRD: {"v1alpha4"}},
    "gatewayapi": {HTTPROUTE_CRD: {"v1", "v1beta1"}},
}


def test_fake_server_refuses_reapplying_another_flavour_in_place() -> None:
    # The failure switch_flavour exists to avoid: Linkerd's split stores v1alpha1, OSM's drops it.
    server = FakeCRDServer()
    apply_flavour(FakeStore(server), "linkerd", timeout=5, interval=0.001)
    osm = flavour_crd("osm", TRAFFICSPLIT_CRD)
    assert osm is not None
    osm["metadata"]["resourceVersion"] = server.crds[TRAFFICSPLIT_CRD]["metadata"]["resourceVersion"]
    status, body = server.replace(TRAFFICSPLIT_CRD, osm)
    assert status == 422
    assert 'status.storedVersions[0]: Invalid value: "v1alpha1": missing from spec.versions' in body["message"]


@pytest.mark.parametrize("start", [None, *FLAVOURS])
@pytest.mark.parametrize("target", list(FLAVOURS))
def test_switch_between_any_two_flavours(start: str | None, target: str) -> None:
    server = FakeCRDServer()
    store = FakeStore(server)
    if start is not None:
        apply_flavour(store, start, timeout=5, interval=0.001)
        assert _served_now(server) == FLAVOUR_DISCOVERY[start]
        server.log.clear()
    apply_flavour(store, target, timeout=5, interval=0.001)
    assert _served_now(server) == FLAVOUR_DISCOVERY[target]
    assert sorted(server.crds) == sorted(crd_names(target))
    for name, crd in server.crds.items():
        # What is installed is the flavour's manifest, whatever was there before.
        wanted = flavour_crd(target, name)
        assert wanted is not None
        assert crd["spec"] == wanted["spec"]
        assert crd["metadata"]["annotations"] == wanted["metadata"]["annotations"]
    deleted = {name for verb, name in server.log if verb == "delete"}
    if start == target:
        assert deleted == set(), "re-installing a flavour keeps its CRDs and their objects"
        assert {verb for verb, _ in server.log} <= {"replace"}


def test_same_layout_is_updated_in_place() -> None:
    # OSM and the SDK both carry HTTPRouteGroup v1alpha4: that CRD (and its objects) stays.
    server = FakeCRDServer()
    store = FakeStore(server)
    apply_flavour(store, "osm", timeout=5, interval=0.001)
    server.log.clear()
    apply_flavour(store, "sdk", timeout=5, interval=0.001)
    assert server.log == [
        ("delete", TRAFFICSPLIT_CRD),
        ("gone", TRAFFICSPLIT_CRD),
        ("replace", HTTPROUTEGROUP_CRD),
        ("create", TRAFFICSPLIT_CRD),
    ]


def test_a_crd_left_terminating_by_an_earlier_run_is_waited_for() -> None:
    server = FakeCRDServer(delete_polls=3)
    store = FakeStore(server)
    apply_flavour(store, "sdk", timeout=5, interval=0.001)
    server.delete(TRAFFICSPLIT_CRD)
    apply_flavour(store, "sdk", timeout=5, interval=0.001)
    assert _served_now(server) == FLAVOUR_DISCOVERY["sdk"]
    assert ("create", TRAFFICSPLIT_CRD) in server.log[-2:]


def test_unknown_flavour_changes_nothing() -> None:
    server = FakeCRDServer()
    with pytest.raises(UnknownFlavourError):
        apply_flavour(FakeStore(server), "istio", timeout=5, interval=0.001)
    assert server.log == []


def test_deletion_that_never_finishes_names_the_crd() -> None:
    server = FakeCRDServer(delete_polls=10**9)
    store = FakeStore(server)
    apply_flavour(store, "linkerd", timeout=5, interval=0.001)
    with pytest.raises(CRDInstallError, match=r"timed out after 0s waiting for CRD httproutegroups\.specs\.smi-spec\.io to be deleted") as caught:
        apply_flavour(store, "gatewayapi", timeout=0.05, interval=0.001)
    # One exception type covers every environment set-up failure for the e2e fixtures.
    assert isinstance(caught.value, E2ESetupError)
    assert isinstance(caught.value.__cause__, E2ESetupError)


def test_refused_create_is_a_typed_error_naming_the_crd() -> None:
    server = FakeCRDServer()
    server.crds[HTTPROUTE_CRD] = {}  # makes create answer 409 but is never read: get() is patched below
    store = FakeStore(server)
    store.get = lambda name: None  # type: ignore[method-assign]
    with pytest.raises(CRDInstallError, match=r"could not create CRD httproutes\.gateway\.networking\.k8s\.io: HTTP 409") as caught:
        apply_flavour(store, "gatewayapi", timeout=5, interval=0.001)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_crd_that_never_gets_established_times_out_quoting_the_reason() -> None:
    server = FakeCRDServer(establish_polls=10**9)
    original_create = server.create

    def create_with_name_conflict(body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        result = original_create(body)
        server.crds[body["metadata"]["name"]]["status"]["conditions"] = [
            {"type": "NamesAccepted", "status": "False", "reason": "ListKindConflict", "message": "already in use"}
        ]
        return result

    server.create = create_with_name_conflict  # type: ignore[method-assign]
    with pytest.raises(CRDInstallError, match=r"to be Established \(last error: NamesAccepted=False \(ListKindConflict: already in use\)\)"):
        apply_flavour(FakeStore(server), "gatewayapi", timeout=0.05, interval=0.001)


# --- the Kubernetes client transport, against the fake over HTTP ---------------------------


class _FakeApiHandler(BaseHTTPRequestHandler):
    server: _FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, status: int, body: Mapping[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _route(self, method: str) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        self.server.requests.append((method, url.path, parse_qs(url.query), self.headers.get("Authorization")))
        length = int(self.headers.get("Content-Length") or 0)
        body: dict[str, Any] = json.loads(self.rfile.read(length)) if length else {}
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        if url.path == crds and method == "POST":
            self._send(*fake.create(body))
        elif url.path.startswith(crds + "/"):
            name = url.path.removeprefix(crds + "/")
            if method == "GET":
                self._send(*fake.get(name))
            elif method == "PUT":
                self._send(*fake.replace(name, body))
            elif method == "DELETE":
                self._send(*fake.delete(name))
        elif url.path == "/apis" and method == "GET":
            groups: dict[str, set[str]] = {}
            for (group, _plural), versions in fake.discovery().items():
                groups.setdefault(group, set()).update(versions)
            self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in sorted(vs)]}
                for g, vs in groups.items()
            ]})
        elif url.path.startswith("/apis/") and method == "GET":
            _, _, group, version = url.path.split("/")
            resources = [
                {"name": plural, "singularName": "", "namespaced": True, "kind": "X", "verbs": ["get"]}
                for (g, plural), versions in fake.discovery().items()
                if g == group and version in versions
            ]
            if resources:
                self._send(200, {"kind": "APIResourceList", "groupVersion": f"{group}/{version}", "resources": resources})
            else:
                self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
        else:
            self._send(405, _status(405, "MethodNotAllowed", f"{method} {url.path}"))

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._route("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")


class _FakeHTTPServer(ThreadingHTTPServer):
    def __init__(self, fake: FakeCRDServer) -> None:
        super().__init__(("127.0.0.1", 0), _FakeApiHandler)
        self.fake = fake
        self.requests: list[tuple[str, str, dict[str, list[str]], str | None]] = []


@pytest.fixture
def fake_api() -> Iterator[_FakeHTTPServer]:
    httpd = _FakeHTTPServer(FakeCRDServer())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _api_client(httpd: _FakeHTTPServer) -> Any:
    config = client.Configuration()
    config.host = f"http://127.0.0.1:{httpd.server_address[1]}"
    config.api_key = {"BearerToken": "e2e-token"}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    return client.ApiClient(config)


def test_switch_flavour_through_the_kubernetes_client(fake_api: _FakeHTTPServer) -> None:
    with _api_client(fake_api) as api_client:
        switch_flavour(api_client, "linkerd", timeout=10, interval=0.01)
        assert _served_now(fake_api.fake) == FLAVOUR_DISCOVERY["linkerd"]
        switch_flavour(api_client, "traefik", timeout=10, interval=0.01)
        assert _served_now(fake_api.fake) == FLAVOUR_DISCOVERY["traefik"]
        switch_flavour(api_client, "traefik", timeout=10, interval=0.01)
        switch_flavour(api_client, "gatewayapi", timeout=10, interval=0.01)
        assert _served_now(fake_api.fake) == FLAVOUR_DISCOVERY["gatewayapi"]
    assert {auth for *_, auth in fake_api.requests} == {"Bearer e2e-token"}
    writes = [(method, query) for method, _path, query, _auth in fake_api.requests if method in {"POST", "PUT"}]
    assert writes and all(query == {"fieldValidation": ["Strict"]} for _method, query in writes)
    # The manifest reaches the server as written: nothing dropped or renamed by client models.
    stored = fake_api.fake.crds[HTTPROUTE_CRD]
    wanted = flavour_crd("gatewayapi", HTTPROUTE_CRD)
    assert wanted is not None
    assert stored["spec"] == wanted["spec"]


def test_refusal_through_the_kubernetes_client_quotes_the_server(fake_api: _FakeHTTPServer) -> None:
    broken = flavour_crd("sdk", TRAFFICSPLIT_CRD)
    assert broken is not None
    broken["spec"]["versions"][0]["storage"] = False
    with _api_client(fake_api) as api_client:
        store = KubernetesCRDStore(api_client)
        with pytest.raises(CRDInstallError) as caught:
            store.create(broken)
        assert store.get("nothing.example.com") is None
        store.delete("nothing.example.com")  # already gone is fine
    assert str(caught.value) == (
        "the API server refused to create CRD trafficsplits.split.smi-spec.io: HTTP 422: spec.versions: "
        "Invalid value: must have exactly one version marked as storage version; fix the manifest under e2e/crds/"
    )


def test_unreachable_api_server_is_a_typed_error() -> None:

    config = client.Configuration()
    config.host = f"http://127.0.0.1:{free_port()}"
    config.retries = 0
    with client.ApiClient(config) as api_client, pytest.raises(CRDInstallError, match="could not reach the API server") as caught:
        KubernetesCRDStore(api_client).get(TRAFFICSPLIT_CRD)
    assert caught.value.__cause__ is not None


def _standard_like_httproute() -> dict[str, Any]:
    # Stands for the Gateway API standard file: same name and version layout, other content, and
    # the empty status upstream files end with.
    crd = flavour_crd("gatewayapi", HTTPROUTE_CRD)
    assert crd is not None
    crd["metadata"]["annotations"] = {"gateway.networking.k8s.io/bundle-version": "v1.4.0"}
    crd["status"] = {"acceptedNames": {"kind": "", "plural": ""}, "conditions": None, "storedVersions": None}
    return crd


def test_a_replacement_is_served_in_place_of_the_flavours_copy_and_back() -> None:
    server = FakeCRDServer()
    store = FakeStore(server)
    apply_flavour(store, "gatewayapi", timeout=5, interval=0.001)
    server.log.clear()
    standard = _standard_like_httproute()
    apply_flavour(store, "gatewayapi", replacements={HTTPROUTE_CRD: standard}, timeout=5, interval=0.001)
    # Same layout: updated in place, so the routes Traefik reads survive.
    assert server.log == [("replace", HTTPROUTE_CRD)]
    assert server.crds[HTTPROUTE_CRD]["metadata"]["annotations"] == standard["metadata"]["annotations"]
    assert server.crds[HTTPROUTE_CRD]["status"]["storedVersions"] == ["v1"], "upstream's empty status is not sent"
    apply_flavour(store, "gatewayapi", timeout=5, interval=0.001)
    wanted = flavour_crd("gatewayapi", HTTPROUTE_CRD)
    assert wanted is not None
    assert server.crds[HTTPROUTE_CRD]["metadata"]["annotations"] == wanted["metadata"]["annotations"]


def test_a_replacement_for_a_crd_the_flavour_lacks_changes_nothing() -> None:
    server = FakeCRDServer()
    with pytest.raises(CRDInstallError, match=HTTPROUTE_CRD):
        apply_flavour(
            FakeStore(server), "linkerd", replacements={HTTPROUTE_CRD: _standard_like_httproute()}, timeout=5, interval=0.001
        )
    assert server.log == []
