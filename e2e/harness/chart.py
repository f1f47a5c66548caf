"""The Helm chart (``helm/canary``) rendered and linted by the helm that ``build.sh`` builds.

The chart's unit tests (``tests/chart``) assert on what :func:`render` returns, and the e2e suite
runs the controller under the ServiceAccount and RBAC it renders (:mod:`e2e.harness.chart_rbac`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from e2e.cluster.binaries import expected_binaries
from e2e.processes import E2ESetupError

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "canary"
#: helm renders in well under a second; a minute means it hangs.
HELM_TIMEOUT_SECONDS = 60


class HelmError(E2ESetupError):
    """helm exited non-zero; ``output`` is what it printed (the schema's or the template's message)."""

    def __init__(self, command: str, output: str) -> None:
        super().__init__(f"{command} failed:\n{output}")
        self.output = output


def helm_binary() -> Path | None:
    """The helm ``build.sh`` builds, or None when it is not built (yet)."""
    path = expected_binaries().helm
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _helm(args: list[str], values: Mapping[str, Any] | None) -> str:
    binary = helm_binary()
    if binary is None:
        raise E2ESetupError(f"helm is not built ({expected_binaries().helm}); run `bash e2e/cluster/build.sh`")
    with tempfile.TemporaryDirectory(prefix="canary-chart-") as tmp:
        command = [str(binary), *args]
        if values is not None:
            # JSON is YAML: no quoting question for a value such as "0m" or "on".
            values_file = Path(tmp) / "values.yaml"
            values_file.write_text(json.dumps(values))
            command += ["--values", str(values_file)]
        # helm keeps caches and plugins under HOME; a throwaway one keeps runs independent.
        env = {**os.environ, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp, "HELM_DATA_HOME": tmp}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=HELM_TIMEOUT_SECONDS,
                              check=False)
    if done.returncode != 0:
        raise HelmError(" ".join(["helm", *args]), (done.stdout + done.stderr).strip())
    return done.stdout


@dataclass(frozen=True)
class Rendered:
    """The objects ``helm template`` printed, in order."""

    objects: tuple[dict[str, Any], ...]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.objects)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        if len(found) != 1:
            names = [o["metadata"]["name"] for o in self.of_kind(kind)]
            raise LookupError(f"expected one {kind}{' ' + name if name else ''}, rendered: {names}")
        return found[0]

    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}


def render(values: Mapping[str, Any] | None = None, *, release: str = "canary",
           namespace: str = "canary-system", show_only: str | None = None) -> Rendered:
    """``helm template`` of the chart with ``values``; :class:`HelmError` when helm refuses them."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    if show_only:
        args += ["--show-only", show_only]
    text = _helm(args, values)
    return Rendered(tuple(doc for doc in yaml.safe_load_all(text) if doc))


def lint(values: Mapping[str, Any] | None = None) -> str:
    """``helm lint --strict`` of the chart with ``values``; its output, or :class:`HelmError`."""
    return _helm(["lint", "--strict", str(CHART)], values)
