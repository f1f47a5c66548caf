"""helm is one of the cached tools: a machine without it builds it on the next `make test`."""

from __future__ import annotations

import os
import re
from pathlib import Path

from e2e.cluster.binaries import BUILD_SCRIPT, binaries_missing, expected_binaries, read_versions


def test_a_missing_helm_counts_as_missing(tmp_path: Path) -> None:
    binaries = expected_binaries(cache=tmp_path)
    assert "helm" in binaries_missing(binaries)
    binaries.helm.parent.mkdir(parents=True)
    binaries.helm.write_text("#!/bin/sh\n")
    os.chmod(binaries.helm, 0o755)
    assert "helm" not in binaries_missing(binaries)


def test_helm_is_cached_by_its_version(tmp_path: Path) -> None:
    versions = read_versions()
    assert re.fullmatch(r"v4\.\d+\.\d+", versions.helm)
    assert expected_binaries(cache=tmp_path).helm == tmp_path / f"helm-{versions.helm}" / "helm"


def test_build_script_installs_helm_in_both_modes() -> None:
    script = BUILD_SCRIPT.read_text()
    assert 'helm_bin="$cache/helm-$HELM_VERSION"' in script
    assert '"helm.sh/helm/v4/cmd/helm@$HELM_VERSION"' in script
    # Called after the --data-plane-only branch, so an external-cluster run has it too.
    tail = script[script.index('if [ "${1:-}" != "--data-plane-only" ]'):]
    assert "\nbuild_helm\n" in tail
