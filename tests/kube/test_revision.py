from __future__ import annotations

import copy
from typing import Any

import pytest

from canary.kube.revision import ConfigRef, config_refs, data_digest, revision_of

CM, SECRET = "ConfigMap", "Secret"


def _pod(**spec: Any) -> dict[str, Any]:
    return {"containers": [{"name": "app", "image": "app:1"}], **spec}


@pytest.mark.parametrize(
    ("pod_spec", "expected"),
    [
        pytest.param(_pod(volumes=[{"name": "v", "configMap": {"name": "cm-vol"}}]),
                     {ConfigRef(CM, "cm-vol")}, id="volume-configmap"),
        pytest.param(_pod(volumes=[{"name": "v", "secret": {"secretName": "s-vol"}}]),
                     {ConfigRef(SECRET, "s-vol")}, id="volume-secret"),
        pytest.param(_pod(volumes=[{"name": "v", "projected": {"sources": [
            {"configMap": {"name": "cm-proj"}}, {"secret": {"name": "s-proj"}},
            {"serviceAccountToken": {"path": "token"}}, {"downwardAPI": {"items": []}},
        ]}}]), {ConfigRef(CM, "cm-proj"), ConfigRef(SECRET, "s-proj")}, id="projected"),
        pytest.param(_pod(containers=[{"name": "a", "envFrom": [
            {"configMapRef": {"name": "cm-envfrom"}}, {"secretRef": {"name": "s-envfrom"}},
        ]}]), {ConfigRef(CM, "cm-envfrom"), ConfigRef(SECRET, "s-envfrom")}, id="envFrom"),
        pytest.param(_pod(containers=[{"name": "a", "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "a"}}},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "b"}}},
            {"name": "C", "value": "plain"},
            {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]}]), {ConfigRef(CM, "cm-env"), ConfigRef(SECRET, "s-env")}, id="env-valueFrom"),
        pytest.param(_pod(initContainers=[{"name": "init", "envFrom": [{"configMapRef": {"name": "cm-init"}}],
                                           "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s-init",
                                                                                                  "key": "x"}}}]}]),
                     {ConfigRef(CM, "cm-init"), ConfigRef(SECRET, "s-init")}, id="initContainers"),
        pytest.param(_pod(volumes=[{"name": "e", "emptyDir": {}}, {"name": "p", "persistentVolumeClaim": {
            "claimName": "data"}}]), set(), id="no-config-volumes"),
        pytest.param({}, set(), id="empty-pod-spec"),
    ],
)
def test_config_refs_finds_every_kind_of_reference(pod_spec: dict[str, Any], expected: set[ConfigRef]) -> None:
    assert config_refs(pod_spec) == frozenset(expected)


def test_config_refs_counts_a_config_used_twice_once() -> None:
    pod_spec = _pod(
        volumes=[{"name": "v", "configMap": {"name": "shared"}}],
        containers=[{"name": "a", "envFrom": [{"configMapRef": {"name": "shared"}}]}],
    )
    assert config_refs(pod_spec) == {ConfigRef(CM, "shared")}


def test_a_configmap_and_a_secret_of_the_same_name_are_different_refs() -> None:
    pod_spec = _pod(volumes=[{"name": "a", "configMap": {"name": "app"}}, {"name": "b", "secret": {"secretName": "app"}}])
    assert config_refs(pod_spec) == {ConfigRef(CM, "app"), ConfigRef(SECRET, "app")}


TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "podinfo"}, "annotations": {"a": "1"}},
    "spec": {"containers": [{"name": "app", "image": "app:1", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]},
}
CFG = ConfigRef(CM, "cfg")
UNUSED = ConfigRef(CM, "unrelated")


def _revision(template: dict[str, Any], namespace_configs: dict[ConfigRef, dict[str, str]]) -> str:
    """The revision as observe computes it from the namespace's configs: only the template's refs count."""
    digests = {ref: data_digest({"data": namespace_configs[ref]}) if ref in namespace_configs else None
               for ref in config_refs(template["spec"])}
    return revision_of(template, digests)


BASE = {CFG: {"k": "v"}, UNUSED: {"x": "1"}}


def test_revision_changes_with_the_image() -> None:
    changed = copy.deepcopy(TEMPLATE)
    changed["spec"]["containers"][0]["image"] = "app:2"
    assert _revision(changed, BASE) != _revision(TEMPLATE, BASE)


@pytest.mark.parametrize("part", ["labels", "annotations"])
def test_revision_changes_with_template_metadata(part: str) -> None:
    changed = copy.deepcopy(TEMPLATE)
    changed["metadata"][part]["restartedAt"] = "now"
    assert _revision(changed, BASE) != _revision(TEMPLATE, BASE)


def test_revision_changes_with_the_data_of_a_referenced_configmap() -> None:
    assert _revision(TEMPLATE, {**BASE, CFG: {"k": "v2"}}) != _revision(TEMPLATE, BASE)


def test_revision_ignores_configmaps_the_template_does_not_use() -> None:
    assert _revision(TEMPLATE, {**BASE, UNUSED: {"x": "2"}}) == _revision(TEMPLATE, BASE)
    assert _revision(TEMPLATE, {CFG: BASE[CFG]}) == _revision(TEMPLATE, BASE)


def test_reverting_the_template_and_the_config_restores_the_revision() -> None:
    original = _revision(TEMPLATE, BASE)
    changed = copy.deepcopy(TEMPLATE)
    changed["spec"]["containers"][0]["image"] = "app:2"
    assert _revision(changed, {**BASE, CFG: {"k": "v2"}}) != original
    assert _revision(copy.deepcopy(TEMPLATE), dict(BASE)) == original


def test_a_missing_config_differs_from_an_empty_one() -> None:
    absent = revision_of(TEMPLATE, {CFG: None})
    empty = revision_of(TEMPLATE, {CFG: data_digest({})})
    assert absent != empty


def test_revision_does_not_depend_on_key_order() -> None:
    reordered = {"spec": TEMPLATE["spec"], "metadata": {"annotations": {"a": "1"}, "labels": {"app": "podinfo"}}}
    assert _revision(reordered, BASE) == _revision(TEMPLATE, BASE)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param({"data": {"k": "v"}}, {"data": {"k": "v"}, "metadata": {"resourceVersion": "9"}}, True,
                     id="metadata-ignored"),
        pytest.param({"data": {"k": "v"}}, {"data": {"k": "w"}}, False, id="data"),
        pytest.param({"data": {"k": "v"}}, {"data": {"k": "v"}, "binaryData": {"b": "AA=="}}, False, id="binaryData"),
        pytest.param({}, {"data": {}, "binaryData": {}}, True, id="absent-equals-empty"),
    ],
)
def test_data_digest_covers_the_payload_only(a: dict[str, Any], b: dict[str, Any], same: bool) -> None:
    assert (data_digest(a) == data_digest(b)) is same
