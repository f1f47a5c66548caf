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


def test_stepweights_with_stepweight_is_refused_by_a_cel_rule(env: Environment, kube: Kube) -> None:
    manifest = app.canary("podinfo", kube.namespace)
    manifest["spec"]["analysis"]["stepWeights"] = [10, 20]
    with pytest.raises(ApiException) as refused:
        kube.create(manifest)
    assert refused.value.status == 422
    body = str(refused.value.body)
    assert "stepWeights cannot be combined with stepWeight" in body, body
