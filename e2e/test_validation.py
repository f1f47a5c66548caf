"""Scenario 11: the API server itself refuses an invalid Canary, with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube


def _with(manifest: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = manifest
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    return manifest


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("spec.analysis.stepWeight", 150, "spec.analysis.stepWeight"),
        ("spec.analysis.interval", "soon", "spec.analysis.interval"),
        ("spec.analysis.noDataPolicy", "ignore", "spec.analysis.noDataPolicy"),
        ("spec.provider", "nginx", "spec.provider"),
        ("spec.service.port", 70000, "spec.service.port"),
        ("spec.targetRef.kind", "StatefulSet", "spec.targetRef.kind"),
    ],
)
def test_invalid_canary_is_refused_naming_the_field(env: Environment, kube: Kube, path: str, value: Any, field: str) -> None:
    manifest = _with(app.canary("podinfo", kube.namespace), path, value)
    with pytest.raises(ApiException) as refused:
        kube.create(manifest)
    assert refused.value.status == 422, refused.value.body
    body = str(refused.value.body)
    assert field in body, f"the refusal must name {field}: {body}"
    with pytest.raises(ApiException) as missing:
        kube.canary("podinfo")
    assert missing.value.status == 404, "nothing was stored"


def test_a_daemonset_target_is_admitted_but_not_with_an_autoscaler(env: Environment, kube: Kube) -> None:
    manifest = app.canary("podinfo", kube.namespace, target_kind="DaemonSet")
    manifest["spec"]["autoscalerRef"] = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                                         "name": "podinfo"}
    with pytest.raises(ApiException) as refused:
        kube.create(manifest)
    assert refused.value.status == 422, refused.value.body
    assert "spec.autoscalerRef" in str(refused.value.body) and "DaemonSet" in str(refused.value.body)
    del manifest["spec"]["autoscalerRef"]
    kube.create(manifest)
    assert kube.canary("podinfo")["spec"]["targetRef"]["kind"] == "DaemonSet"


def test_stepweights_with_stepweight_is_refused_by_a_cel_rule(env: Environment, kube: Kube) -> None:
    manifest = app.canary("podinfo", kube.namespace)
    manifest["spec"]["analysis"]["stepWeights"] = [10, 20]
    with pytest.raises(ApiException) as refused:
        kube.create(manifest)
    assert refused.value.status == 422
    body = str(refused.value.body)
    assert "stepWeights cannot be combined with stepWeight" in body, body


# --- floors and ceilings (issue 8) ------------------------------------------------------------
#
# The real API server evaluates the CEL duration rules with Go's time.ParseDuration; these cases
# prove it refuses what the parser refuses, with the rule's message, and accepts the edges.

HOOK = {"name": "load", "url": "http://load.test/", "timeout": "2s"}
DURATION_MESSAGE = {
    "spec.analysis.interval": "analysis.interval must be a duration from 1s to 24h",
    "spec.analysis.metrics[0].interval": "metrics[].interval must be a duration from 1s to 24h",
    "spec.analysis.webhooks[0].timeout": "webhooks[].timeout must be a duration from 100ms to 1h",
}


def _bounded(path: str, value: Any) -> dict[str, Any]:
    manifest = app.canary("podinfo", "unused", webhooks=[HOOK])
    node: Any = manifest
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return manifest


def _create(kube: Kube, manifest: dict[str, Any], *, dry_run: bool = False) -> None:
    manifest["metadata"]["namespace"] = kube.namespace
    kube.custom.create_namespaced_custom_object("canary.dev", "v1alpha1", kube.namespace, "canaries", manifest,
                                                **({"dry_run": "All"} if dry_run else {}))


OUT_OF_BOUNDS: list[tuple[str, Any]] = [
    # Durations: an overflow for Go, a huge but parseable value, a zero-length one, past the ceiling.
    *((f, v) for f in DURATION_MESSAGE for v in ("99999999999h", "999999999h", "0.0000001ms")),
    ("spec.analysis.interval", "24h0.001ms"),
    ("spec.analysis.interval", "999ms"),
    ("spec.analysis.interval", "1m\n"),  # RE2's $ does not match before a final newline; the parser agrees
    ("spec.analysis.metrics[0].interval", "25h"),
    ("spec.analysis.webhooks[0].timeout", "61m"),
    ("spec.analysis.webhooks[0].timeout", "99ms"),
    # Counts past their ceiling.
    ("spec.progressDeadlineSeconds", 86401),
    ("spec.progressDeadlineSeconds", 2_000_000_000),
    ("spec.progressDeadlineSeconds", 10**15),
    ("spec.analysis.threshold", 1001),
    ("spec.analysis.minSampleSize", 1_000_000_001),
    ("spec.analysis.webhooks[0].retries", 11),
]


@pytest.mark.parametrize(("path", "value"), OUT_OF_BOUNDS, ids=[f"{p}={v}" for p, v in OUT_OF_BOUNDS])
def test_out_of_bounds_values_are_refused_naming_the_field(env: Environment, kube: Kube, path: str, value: Any) -> None:
    with pytest.raises(ApiException) as refused:
        _create(kube, _bounded(path, value))
    assert refused.value.status == 422, refused.value.body
    body = str(refused.value.body)
    assert path in body, f"the refusal must name {path}: {body}"
    if path in DURATION_MESSAGE:
        # The rule's own message, not a CEL evaluation error from time.ParseDuration.
        assert DURATION_MESSAGE[path] in body, body
        assert "evaluation error" not in body.lower() and "invalid duration" not in body, body


def test_too_many_iterations_and_steps_are_refused(env: Environment, kube: Kube) -> None:
    blue_green = _bounded("spec.analysis.iterations", 1001)
    del blue_green["spec"]["analysis"]["stepWeight"]
    steps = _bounded("spec.analysis.stepWeights", list(range(1, 22)))
    del steps["spec"]["analysis"]["stepWeight"]
    steps["spec"]["analysis"]["maxWeight"] = 100
    for manifest, field in ((blue_green, "spec.analysis.iterations"), (steps, "spec.analysis.stepWeights")):
        with pytest.raises(ApiException) as refused:
            _create(kube, manifest)
        assert refused.value.status == 422 and field in str(refused.value.body), refused.value.body


EDGES: list[tuple[str, Any]] = [
    ("spec.analysis.interval", "1s"), ("spec.analysis.interval", "24h"), ("spec.analysis.interval", "23h59m59.999s"),
    ("spec.analysis.metrics[0].interval", "1s"), ("spec.analysis.metrics[0].interval", "24h0m0s0.000ms"),
    ("spec.analysis.webhooks[0].timeout", "100ms"), ("spec.analysis.webhooks[0].timeout", "1h"),
    ("spec.progressDeadlineSeconds", 86400), ("spec.analysis.threshold", 1000),
    ("spec.analysis.minSampleSize", 1_000_000_000),
]


@pytest.mark.parametrize(("path", "value"), EDGES, ids=[f"{p}={v}" for p, v in EDGES])
def test_values_at_the_edges_are_admitted(env: Environment, kube: Kube, path: str, value: Any) -> None:
    _create(kube, _bounded(path, value), dry_run=True)  # raises ApiException if refused
