"""The kwok configuration of the local control plane, without kwok: which stages, from where."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from e2e.cluster.binaries import KwokStages, binaries_missing, expected_binaries
from e2e.cluster.kwok_config import POD_DELETE_DELAY_ANNOTATION, kwok_config_text
from e2e.processes import E2ESetupError


def _stage(name: str) -> str:
    return (
        "# shipped comment\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\n"
        f"metadata:\n  name: {name}\nspec:\n  resourceRef:\n    apiGroup: v1\n    kind: Pod\n"
    )


def _shipped(tmp_path: Path) -> KwokStages:
    stages = KwokStages(tmp_path / "stages")
    stages.directory.mkdir()
    stages.pod_ready.write_text(_stage("pod-ready"))
    stages.pod_complete.write_text(_stage("pod-complete"))
    return stages


def test_config_carries_the_shipped_stages_verbatim_and_our_delete_stage(tmp_path: Path) -> None:
    stages = _shipped(tmp_path)
    text = kwok_config_text(stages)
    assert stages.pod_ready.read_text() in text and stages.pod_complete.read_text() in text
    documents = list(yaml.safe_load_all(text))
    assert [(d["kind"], d.get("metadata", {}).get("name")) for d in documents] == [
        ("KwokConfiguration", None),
        ("Stage", "pod-ready"),
        ("Stage", "pod-complete"),
        ("Stage", "pod-delete"),
    ]
    delay = documents[-1]["spec"]["delay"]
    assert POD_DELETE_DELAY_ANNOTATION in delay["durationFrom"]["expressionFrom"]
    # A jitter bound would make Pods without the annotation wait a random part of their grace.
    assert "jitterDurationFrom" not in delay and "jitterDurationMilliseconds" not in delay


def test_a_stage_file_that_is_not_the_named_pod_stage_is_refused(tmp_path: Path) -> None:
    stages = _shipped(tmp_path)
    stages.pod_complete.write_text(_stage("pod-ready"))
    with pytest.raises(E2ESetupError, match="pod-complete"):
        kwok_config_text(stages)


def test_kwok_without_its_stage_files_counts_as_missing(tmp_path: Path) -> None:
    binaries = expected_binaries(cache=tmp_path)
    binaries.kwok.parent.mkdir(parents=True)
    binaries.kwok.write_text("#!/bin/sh\n")
    os.chmod(binaries.kwok, 0o755)
    assert "kwok" not in binaries_missing(binaries)
    assert "kwok-stages" in binaries_missing(binaries)
    _shipped(binaries.kwok.parent)
    assert "kwok-stages" not in binaries_missing(binaries)
