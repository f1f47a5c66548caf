"""The CRDs are well formed for the API server: structural, bounded rules, and in step with the domain."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jsonschema
import pytest

from canary.domain.bounds import DURATION_MAX_LENGTH
from canary.domain.flagger_fields import CANARY_FIELDS, METRIC_TEMPLATE_FIELDS, refused
from canary.domain.providers import PROVIDERS, REFUSED_PROVIDERS
from canary.domain.durations import DURATION_PATTERN
from canary.domain.spec import TARGET_KINDS, NoDataPolicy, ProviderType, WebhookType
from canary.domain.status import CheckKind, Phase, Verdict
from tests.crds.schema_validator import (
    CRD_DIR,
    compile_rule,
    iter_rules,
    iter_schema,
    load_crds,
    load_yaml_documents,
    to_json_schema,
)

KINDS = ("Canary", "MetricTemplate")
VALID_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}


def schema_of(kind: str) -> Mapping[str, Any]:
    return load_crds()[kind].schema


#: Refused Flagger fields whose value is not a boolean (those are declared as booleans).
REFUSED_PATHS = {f.path for f in refused(CANARY_FIELDS)} - {"spec.service.delegation"}
REFUSED_TEMPLATE_PATHS = {f.path for f in refused(METRIC_TEMPLATE_FIELDS)}


def node_at(schema: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """The schema node for a dotted path, ``[]`` stepping into list items."""
    node = schema
    for part in re.findall(r"[^.\[\]]+|\[\]", path):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def all_nodes(kind: str) -> list[tuple[str, Mapping[str, Any]]]:
    return [(path, node) for node, _spath, path in iter_schema(schema_of(kind))]


def test_each_file_holds_exactly_one_crd() -> None:
    files = sorted(CRD_DIR.glob("*.yaml"))
    assert [f.name for f in files] == ["canary.dev_alertproviders.yaml", "canary.dev_canaries.yaml",
                                       "canary.dev_metrictemplates.yaml"]
    for path in files:
        docs = load_yaml_documents(path)
        assert len(docs) == 1, path
        assert docs[0]["apiVersion"] == "apiextensions.k8s.io/v1"
        assert docs[0]["kind"] == "CustomResourceDefinition"


@pytest.mark.parametrize(
    ("kind", "plural", "short"),
    [("Canary", "canaries", "cn"), ("MetricTemplate", "metrictemplates", "mt")],
    ids=KINDS,
)
def test_names(kind: str, plural: str, short: str) -> None:
    crd = load_crds()[kind].crd
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{plural}.canary.dev"
    assert spec["group"] == "canary.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == plural
    assert spec["names"]["singular"] == kind.lower()
    assert spec["names"]["listKind"] == f"{kind}List"
    assert spec["names"]["shortNames"] == [short]
    # A category that is also a resource name (singular, plural or short) makes kubectl expand it
    # before the name: `kubectl get canary NAME` would then fail.
    assert spec["names"]["categories"] == ["progressive-delivery"]
    names = {spec["names"]["plural"], spec["names"]["singular"], *spec["names"]["shortNames"], "canary", "canaries"}
    assert not names & set(spec["names"]["categories"])


@pytest.mark.parametrize("kind", KINDS)
def test_one_version_served_and_stored(kind: str) -> None:
    versions = load_crds()[kind].crd["spec"]["versions"]
    assert [(v["name"], v["served"], v["storage"]) for v in versions] == [("v1alpha1", True, True)]


def test_canary_has_status_subresource() -> None:
    assert load_crds()["Canary"].version["subresources"] == {"status": {}}


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        (
            "Canary",
            [
                ("Phase", "string", ".status.phase"),
                ("Weight", "integer", ".status.canaryWeight"),
                ("FailedChecks", "integer", ".status.failedChecks"),
                ("LastTransition", "date", ".status.lastTransitionTime"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ],
        ),
        (
            "MetricTemplate",
            [
                ("Provider", "string", ".spec.provider.type"),
                ("Address", "string", ".spec.provider.address"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ],
        ),
    ],
    ids=KINDS,
)
def test_printer_columns(kind: str, columns: list[tuple[str, str, str]]) -> None:
    version = load_crds()[kind].version
    got = [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert got == columns
    for _name, col_type, json_path in columns:
        if json_path.startswith(".metadata."):
            continue
        node = node_at(schema_of(kind), json_path.lstrip("."))
        expected = {"integer": "integer", "string": "string", "date": "string"}[col_type]
        assert node["type"] == expected, json_path
        if col_type == "date":
            assert node.get("format") == "date-time", json_path


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_has_a_type(kind: str) -> None:
    for path, node in all_nodes(kind):
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            assert node.get("anyOf") == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_fields_are_kept_only_where_kopf_writes(kind: str) -> None:
    preserved = {path for path, node in all_nodes(kind) if node.get("x-kubernetes-preserve-unknown-fields")}
    # Besides kopf's bookkeeping: refused Flagger fields (any shape, refused by rule), Flagger's
    # deprecated canaryAnalysis and the Istio-shaped match items and uriRegexRewrite, whose
    # unsupported parts the parser refuses by name rather than the API server dropping them.
    refused_objects = {"spec.ingressRef", "spec.routeRef", "spec.upstreamRef",
                       "spec.service.trafficPolicy", "spec.service.match[]", "spec.service.retries",
                       "spec.service.corsPolicy"}
    assert refused_objects <= {p.removesuffix("[]") for p in REFUSED_PATHS} | REFUSED_PATHS | {
        "spec.service.match[]"}
    canary = {"status.kopf", "spec.canaryAnalysis", "spec.analysis.match[]", "spec.service.rewrite.uriRegexRewrite",
              *refused_objects}
    assert preserved == (canary if kind == "Canary" else set())
    if kind == "Canary":
        assert node_at(schema_of(kind), "status.kopf")["type"] == "object"


@pytest.mark.parametrize("kind", KINDS)
def test_objects_have_either_properties_or_a_value_schema(kind: str) -> None:
    # Structural schemas forbid both on one node.
    for path, node in all_nodes(kind):
        assert not ("properties" in node and "additionalProperties" in node), path


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_are_valid_for_their_own_schema(kind: str) -> None:
    # The API server refuses a CRD whose defaults would fail its own validation.
    found = 0
    for path, node in all_nodes(kind):
        if "default" in node:
            found += 1
            jsonschema.validate(node["default"], to_json_schema(node))
            assert node.get("nullable") is not True, f"{path}: a nullable field never gets its default"
    assert found


@pytest.mark.parametrize("kind", KINDS)
def test_required_fields_exist(kind: str) -> None:
    for path, node in all_nodes(kind):
        for name in node.get("required", []):
            assert name in node.get("properties", {}), f"{path} requires unknown {name}"


def rules_of(kind: str) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    out: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = []
    for node, spath, rules in iter_rules(schema_of(kind)):
        path = next(p for n, s, p in iter_schema(schema_of(kind)) if s == spath)
        out.extend((path, node, rule) for rule in rules)
    return out


def test_canary_has_the_rules_the_spec_needs() -> None:
    paths = [path for path, _node, _rule in rules_of("Canary")]
    refusals = sum(1 for f in refused(CANARY_FIELDS) if f.path.rpartition(".")[0] == "spec")
    service_refusals = sum(1 for f in refused(CANARY_FIELDS) if f.path.rpartition(".")[0] == "spec.service")
    analysis_refusals = sum(1 for f in refused(CANARY_FIELDS) if f.path.rpartition(".")[0] == "spec.analysis")
    metric_refusals = sum(1 for f in refused(CANARY_FIELDS) if f.path.rpartition(".")[0] == "spec.analysis.metrics[]")
    assert paths == [
        *["spec"] * (3 + refusals),  # analysis required, canaryAnalysis, autoscalerRef on a DaemonSet
        "spec.autoscalerRef", "spec.autoscalerRef", "spec.autoscalerRef.primaryScalerReplicas",
        "spec.targetRef.kind",
        *["spec.service"] * service_refusals,
        "spec.service.timeout", "spec.service.backendTimeout",
        *["spec.provider"] * (1 + len(REFUSED_PROVIDERS)),
        *["spec.analysis"] * (6 + analysis_refusals),
        "spec.analysis.interval",
        "spec.analysis.stepWeights",
        "spec.analysis.judge.lookEvery",
        *["spec.analysis.metrics[]"] * (3 + metric_refusals),
        "spec.analysis.metrics[].interval",
        "spec.analysis.metrics[].thresholdRange", "spec.analysis.metrics[].thresholdRange",
        "spec.analysis.webhooks[].timeout",
        "status.phase",
    ]
    assert [path for path, _node, _rule in rules_of("MetricTemplate")] == ["spec.provider"]  # region, refused


def test_nullable_fields_have_no_enum() -> None:
    # The API server's enum check never matches null, even when null is listed.
    for kind in KINDS:
        for path, node in all_nodes(kind):
            assert not (node.get("nullable") and "enum" in node), path


def test_phase_rule_lists_every_phase() -> None:
    node = node_at(schema_of("Canary"), "status.phase")
    assert node["nullable"] is True
    (rule,) = node["x-kubernetes-validations"]
    assert re.findall(r"'(\w+)'", rule["rule"]) == [p.value for p in Phase]


@pytest.mark.parametrize(
    ("path", "rule"),
    [(p, r) for p, _n, r in rules_of("Canary")],
    ids=[f"{p}#{i}" for i, (p, _n, _r) in enumerate(rules_of("Canary"))],
)
def test_rule_is_well_formed(path: str, rule: Mapping[str, Any]) -> None:
    assert set(rule) <= {"rule", "message", "fieldPath", "reason"}
    compile_rule(rule["rule"])
    # Non-standard Kubernetes CEL libraries would not run in the unit tests.
    assert not re.search(r"\b(isURL|isSorted|indexOf|lastIndexOf|quantity|url|format)\(", rule["rule"])
    assert len(rule["message"]) > 30
    assert rule.get("reason", "FieldValueInvalid") in VALID_REASONS
    if "fieldPath" in rule:
        node = node_at(schema_of("Canary"), path)
        assert rule["fieldPath"].startswith(".")
        assert rule["fieldPath"][1:] in node["properties"], rule["fieldPath"]


def test_rule_messages_name_their_field() -> None:
    for path, _node, rule in rules_of("Canary"):
        names = {path.rsplit(".", 1)[-1].rstrip("[]"), rule.get("fieldPath", ".")[1:]}
        if path.endswith("analysis"):
            names |= {"analysis", "stepWeight", "stepWeights", "maxWeight", "iterations"}
        assert any(n and n in rule["message"] for n in names), (path, rule["message"])


def test_rules_have_bounded_cost() -> None:
    # The API server estimates each rule's worst case from maxItems and maxLength and refuses
    # a CRD without them; walking every ancestor list mirrors how it multiplies the cost.
    schema = schema_of("Canary")
    for _node, spath, rules in iter_rules(schema):
        node: Any = schema
        ancestors: list[Any] = []
        for key in spath:
            ancestors.append(node)
            node = node[key]
        for ancestor in ancestors:
            if ancestor.get("type") == "array":
                assert "maxItems" in ancestor, spath
        if node.get("type") == "string":
            assert "maxLength" in node, spath
        if node.get("type") == "array":
            assert "maxItems" in node, spath
        for rule in rules:
            for name in re.findall(r"self\.(\w+)(?![\w(])", rule["rule"]):
                prop = node.get("properties", {}).get(name)
                assert prop is not None, (spath, name)
            # has() costs the same whatever the field holds (the refusals of Flagger-only fields).
            for name in re.findall(r"self\.(\w+)(?![\w(])", re.sub(r"has\(self\.\w+\)", "", rule["rule"])):
                prop = node["properties"][name]
                if prop.get("type") == "string":
                    assert "maxLength" in prop, (spath, name)
                if prop.get("type") == "array":
                    assert "maxItems" in prop, (spath, name)


def test_step_weights_rule_covers_every_index() -> None:
    # The increasing-weights rule lists indices literally; it must reach maxItems - 1.
    node = node_at(schema_of("Canary"), "spec.analysis.stepWeights")
    rule = node["x-kubernetes-validations"][0]["rule"]
    indices = [int(i) for i in re.search(r"\[([\d, ]+)\]\.all", rule).group(1).split(",")]  # type: ignore[union-attr]
    assert indices == list(range(node["maxItems"] - 1))


DURATION_FIELDS = ("spec.service.timeout", "spec.service.backendTimeout", "spec.analysis.interval",
                   "spec.analysis.judge.lookEvery",
                   "spec.analysis.metrics[].interval", "spec.analysis.webhooks[].timeout")


def test_duration_fields_use_the_python_pattern() -> None:
    durations = [path for path, node in all_nodes("Canary") if node.get("pattern") == DURATION_PATTERN]
    assert tuple(durations) == DURATION_FIELDS
    for path in DURATION_FIELDS:
        node = node_at(schema_of("Canary"), path)
        assert node["maxLength"] == DURATION_MAX_LENGTH
        # The rule guards duration() with the same pattern (see tests/crds/test_bounds.py).
        (rule,) = node["x-kubernetes-validations"]
        assert rule["rule"].startswith(f"self.matches('{DURATION_PATTERN}') && ")


DOMAIN_ENUMS: list[tuple[str, str, list[Any]]] = [
    ("Canary", "spec.analysis.webhooks[].type", [t.value for t in WebhookType]),
    ("Canary", "spec.analysis.noDataPolicy", [p.value for p in NoDataPolicy]),
    ("MetricTemplate", "spec.provider.type", [p.value for p in ProviderType]),
    ("Canary", "status.checks[].kind", [k.value for k in CheckKind]),
    ("Canary", "status.checks[].verdict", [v.value for v in Verdict]),
    ("Canary", "status.conditions[].status", ["True", "False", "Unknown"]),
]


@pytest.mark.parametrize(("kind", "path", "values"), DOMAIN_ENUMS, ids=[f"{k}:{p}" for k, p, _v in DOMAIN_ENUMS])
def test_enums_match_the_domain(kind: str, path: str, values: list[Any]) -> None:
    assert node_at(schema_of(kind), path)["enum"] == values


def test_providers_are_the_routers_the_controller_knows() -> None:
    node = node_at(schema_of("Canary"), "spec.provider")
    known, *refusals = node["x-kubernetes-validations"]
    assert known["rule"] == f"self in {sorted_list(PROVIDERS)} || self in {sorted_list(REFUSED_PROVIDERS)}"
    assert [(r["rule"], r["message"]) for r in refusals] == [
        (f"self != '{name}'", f"spec.provider {name!r} is refused: {why}") for name, why in REFUSED_PROVIDERS.items()
    ]
    assert "default" not in node and "enum" not in node


def sorted_list(names: Mapping[str, object]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


def test_target_kinds_are_the_parsers() -> None:
    (rule,) = node_at(schema_of("Canary"), "spec.targetRef.kind")["x-kubernetes-validations"]
    assert rule["rule"] == f"self in {sorted_list(dict.fromkeys(TARGET_KINDS))}"
    assert all(kind in rule["message"] for kind in TARGET_KINDS)


def test_conditions_are_a_map_keyed_by_type() -> None:
    node = node_at(schema_of("Canary"), "status.conditions")
    assert node["x-kubernetes-list-type"] == "map"
    assert node["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in node["items"]["required"]
