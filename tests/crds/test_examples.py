"""Every manifest under examples/ is accepted by the CRDs and by the Python parser alike."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from canary.domain.bounds import METRIC_INTERVAL
from canary.domain.durations import parse_duration
from canary.domain.spec import parse_canary_spec, parse_metric_template_spec
from canary.metrics.templates import render_query
from tests.crds.schema_validator import EXAMPLES_DIR, load_crds, load_yaml_documents

EXPECTED_FILES = {
    "blue-green.yaml",
    "flagger-ported.yaml",
    "metric-template.yaml",
    "podinfo-canary.yaml",
    "step-weights.yaml",
}
PARSERS = {"Canary": parse_canary_spec, "MetricTemplate": parse_metric_template_spec}


def example_documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted(EXAMPLES_DIR.glob("*.yaml")) for doc in load_yaml_documents(path)]


def doc_id(path: Path, doc: dict[str, Any]) -> str:
    return f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"


ALL_DOCS = example_documents()
CUSTOM_DOCS = [(p, d) for p, d in ALL_DOCS if d["kind"] in PARSERS]


def test_the_examples_are_there() -> None:
    assert {p.name for p in EXAMPLES_DIR.glob("*.yaml")} == EXPECTED_FILES
    kinds = {(p.name, d["kind"]) for p, d in ALL_DOCS}
    assert ("podinfo-canary.yaml", "Deployment") in kinds
    assert ("metric-template.yaml", "MetricTemplate") in kinds
    assert all((name, "Canary") in kinds for name in EXPECTED_FILES)


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_open_with_an_explanation(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# "), "start with a comment saying what the example shows"
    assert sum(line.lstrip().startswith("#") for line in lines) >= 3


@pytest.mark.parametrize(("path", "doc"), ALL_DOCS, ids=[doc_id(p, d) for p, d in ALL_DOCS])
def test_every_document_is_a_namespaced_object(path: Path, doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] and doc["kind"]
    assert doc["metadata"]["name"]
    assert doc["metadata"]["namespace"]


@pytest.mark.parametrize(("path", "doc"), CUSTOM_DOCS, ids=[doc_id(p, d) for p, d in CUSTOM_DOCS])
def test_admitted_without_dropping_fields(path: Path, doc: dict[str, Any]) -> None:
    admitted = load_crds()[doc["kind"]].admit(doc)
    assert admitted.pruned == [], "a field the CRD does not know is a typo in the example"


@pytest.mark.parametrize(("path", "doc"), CUSTOM_DOCS, ids=[doc_id(p, d) for p, d in CUSTOM_DOCS])
def test_parser_accepts_what_the_api_server_stores(path: Path, doc: dict[str, Any]) -> None:
    stored = load_crds()[doc["kind"]].admit(doc).object
    PARSERS[doc["kind"]](stored["spec"])
    # Objects stored before a default existed reach the parser without it.
    PARSERS[doc["kind"]](doc["spec"])


def _template_metrics() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for _path, doc in CUSTOM_DOCS:
        if doc["kind"] == "Canary":
            for metric in doc["spec"]["analysis"].get("metrics", []):
                if "templateRef" in metric:
                    yield doc, metric


def test_template_references_resolve_and_render() -> None:
    templates = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d for _p, d in CUSTOM_DOCS if d["kind"] == "MetricTemplate"
    }
    seen = 0
    for canary, metric in _template_metrics():
        ref = metric["templateRef"]
        template = templates[(ref.get("namespace", canary["metadata"]["namespace"]), ref["name"])]
        spec = canary["spec"]
        window = parse_duration(metric.get("interval", spec["analysis"].get("interval", "1m")), "interval",
                                METRIC_INTERVAL)
        rendered = render_query(
            template["spec"]["query"],
            name=canary["metadata"]["name"],
            namespace=canary["metadata"]["namespace"],
            target=spec["targetRef"]["name"],
            service=spec["service"].get("name", spec["targetRef"]["name"]),
            window=window,
            variables=metric.get("templateVariables", {}),
        )
        assert "{{" not in rendered
        seen += 1
    assert seen >= 2


def test_metric_template_example_uses_every_kind_of_placeholder() -> None:
    (query,) = [d["spec"]["query"] for p, d in CUSTOM_DOCS if p.name == "metric-template.yaml" and d["kind"] == "MetricTemplate"]
    for placeholder in ("{{ namespace }}", "{{ target }}", "{{ interval }}", "{{ variables."):
        assert placeholder in query


# Flagger's flagger.app/v1beta1 Canary fields that mean the same here ("*" is any map key).
FLAGGER_FIELDS = {
    "spec.targetRef.apiVersion", "spec.targetRef.kind", "spec.targetRef.name",
    "spec.progressDeadlineSeconds", "spec.provider", "spec.skipAnalysis", "spec.suspend", "spec.revertOnDeletion",
    "spec.service.port", "spec.service.targetPort", "spec.service.portName", "spec.service.name",
    "spec.analysis.interval", "spec.analysis.threshold", "spec.analysis.maxWeight", "spec.analysis.stepWeight",
    "spec.analysis.stepWeights", "spec.analysis.stepWeightPromotion", "spec.analysis.iterations",
    "spec.analysis.metrics[].name", "spec.analysis.metrics[].interval",
    "spec.analysis.metrics[].thresholdRange.min", "spec.analysis.metrics[].thresholdRange.max",
    "spec.analysis.metrics[].templateRef.name", "spec.analysis.metrics[].templateRef.namespace",
    "spec.analysis.metrics[].templateVariables.*",
    "spec.analysis.webhooks[].name", "spec.analysis.webhooks[].type", "spec.analysis.webhooks[].url",
    "spec.analysis.webhooks[].timeout", "spec.analysis.webhooks[].retries", "spec.analysis.webhooks[].metadata.*",
}
MAP_FIELDS = {"templateVariables", "metadata"}


def leaf_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in MAP_FIELDS and path.endswith("[]"):
                yield f"{path}.{key}.*"
            else:
                yield from leaf_paths(item, f"{path}.{key}")
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for item in value:
            yield from leaf_paths(item, f"{path}[]")
    else:
        yield path


def test_flagger_manifest_ports_by_changing_the_api_version() -> None:
    (doc,) = [d for p, d in CUSTOM_DOCS if p.name == "flagger-ported.yaml"]
    assert doc["apiVersion"] == "canary.dev/v1alpha1"
    used = set(leaf_paths(doc["spec"], "spec"))
    assert used <= FLAGGER_FIELDS, used - FLAGGER_FIELDS
    assert "spec.provider" not in used, "Flagger's provider names a mesh; ours a router"


# --- schema defaults and parser defaults are the same defaults --------------------------------

MINIMAL_CANARIES: dict[str, dict[str, Any]] = {
    "step-weight": {"targetRef": {"name": "app"}, "service": {"port": 80}, "analysis": {"stepWeight": 10}},
    "step-weights": {"targetRef": {"name": "app"}, "service": {"port": 80}, "analysis": {"stepWeights": [5, 50]}},
    "iterations": {"targetRef": {"name": "app"}, "service": {"port": 80}, "analysis": {"iterations": 3}},
    "metrics-and-webhooks": {
        "targetRef": {"name": "app"},
        "service": {"port": 80},
        "analysis": {
            "stepWeight": 20,
            "metrics": [
                {"name": "request-duration", "thresholdRange": {"max": 500}},
                {"name": "custom", "templateRef": {"name": "t"}, "thresholdRange": {"min": 1}},
            ],
            "webhooks": [{"name": "hook", "url": "http://hook.test/"}],
        },
    },
}
MINIMAL_TEMPLATES: dict[str, dict[str, Any]] = {
    "no-provider": {"query": "up"},
    "address-only": {"provider": {"address": "http://prometheus:9090"}, "query": "up"},
}


def _wrap(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "canary.dev/v1alpha1", "kind": kind, "metadata": {"name": "x", "namespace": "y"},
            "spec": copy.deepcopy(spec)}


@pytest.mark.parametrize(
    ("kind", "spec"),
    [("Canary", s) for s in MINIMAL_CANARIES.values()] + [("MetricTemplate", s) for s in MINIMAL_TEMPLATES.values()],
    ids=[f"Canary:{k}" for k in MINIMAL_CANARIES] + [f"MetricTemplate:{k}" for k in MINIMAL_TEMPLATES],
)
def test_schema_defaults_mean_what_the_parser_assumes(kind: str, spec: dict[str, Any]) -> None:
    stored = load_crds()[kind].admit(_wrap(kind, spec)).object["spec"]
    assert PARSERS[kind](stored) == PARSERS[kind](spec)


def test_schema_defaults_in_full() -> None:
    stored = load_crds()["Canary"].admit(_wrap("Canary", MINIMAL_CANARIES["metrics-and-webhooks"])).object["spec"]
    assert stored == {
        "targetRef": {"name": "app", "apiVersion": "apps/v1", "kind": "Deployment"},
        "service": {"port": 80, "portName": "http", "portDiscovery": False},
        "progressDeadlineSeconds": 600,
        "skipAnalysis": False,
        "suspend": False,
        "revertOnDeletion": False,
        "analysis": {
            "stepWeight": 20,
            "interval": "1m",
            "threshold": 5,
            "noDataPolicy": "hold",
            "minSampleSize": 1,
            "consecutiveErrorLimit": 4,
            "consecutiveNoDataLimit": 10,
            "primaryReadyThreshold": 100,
            "canaryReadyThreshold": 100,
            "mirror": False,
            "metrics": [
                {"name": "request-duration", "thresholdRange": {"max": 500}},
                {"name": "custom", "templateRef": {"name": "t"}, "thresholdRange": {"min": 1}},
            ],
            "webhooks": [{"name": "hook", "url": "http://hook.test/", "type": "rollout", "timeout": "10s", "retries": 0,
                          "muteAlert": False}],
        },
    }
    template = load_crds()["MetricTemplate"].admit(_wrap("MetricTemplate", MINIMAL_TEMPLATES["no-provider"])).object
    assert template["spec"] == {"query": "up", "provider": {"type": "prometheus", "insecureSkipVerify": False}}


def test_nulls_are_dropped_then_defaulted() -> None:
    # kubectl and Helm can send explicit nulls; the server drops them for non-nullable fields.
    spec = copy.deepcopy(MINIMAL_CANARIES["step-weight"])
    spec["analysis"]["interval"] = None
    spec["provider"] = None
    stored = load_crds()["Canary"].admit(_wrap("Canary", spec)).object["spec"]
    assert stored["analysis"]["interval"] == "1m"
    assert "provider" not in stored
    assert parse_canary_spec(stored).provider is None
