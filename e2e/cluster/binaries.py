"""Where the control-plane binaries are, and building them with ``build.sh`` when they are not.

The versions come from ``versions.env`` next to ``build.sh``, so bumping a version there is
enough for both the build and this lookup to agree on the cache directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from e2e.processes import E2ESetupError

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
VERSIONS_FILE = HERE / "versions.env"


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    kwok: str
    traefik: str
    gateway_api: str
    """The Gateway API release whose standard CRDs are installed for Traefik (its go.mod's)."""
    helm: str


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every executable the e2e environment runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    """Not part of the control plane: the e2e suite runs it as users do (``test_docs_commands``)."""
    kwok: Path
    prometheus: Path
    traefik: Path
    """The real gateway of the Gateway API scenarios; its CRDs are beside it (:attr:`traefik_crds`)."""
    helm: Path
    """Renders and lints the chart (``tests/chart``) and the RBAC the e2e controller runs under."""

    @property
    def traefik_crds(self) -> TraefikCRDs:
        """The CRD files ``build.sh`` copies next to the Traefik binary."""
        return TraefikCRDs(self.traefik.parent / "crds")

    @property
    def kwok_stages(self) -> KwokStages:
        """The stage files ``build.sh`` copies next to the kwok binary."""
        return KwokStages(self.kwok.parent / "stages")


@dataclass(frozen=True)
class TraefikCRDs:
    """Where ``build.sh`` puts the CRDs Traefik serves, copied from the modules it is built from."""

    directory: Path

    @property
    def gateway_api(self) -> Path:
        """The Gateway API standard channel CRDs, one file each, exactly as that module ships them."""
        return self.directory / "gateway-api"

    @property
    def traefik(self) -> Path:
        """Traefik's own CRDs (``traefik.io``: IngressRoute, Middleware, TraefikService, ...)."""
        return self.directory / "traefik.yaml"

    def present(self) -> bool:
        return self.traefik.is_file() and any(self.gateway_api.glob("*.yaml"))


@dataclass(frozen=True)
class KwokStages:
    """kwok's own "fast" Pod stages, copied by ``build.sh`` from the kwok module the binary is built
    from. Configuring any Pod stage turns off all of kwok's defaults, so the ones we do not change
    are taken exactly as that version ships them (see :mod:`e2e.cluster.kwok_config`)."""

    directory: Path

    @property
    def pod_ready(self) -> Path:
        return self.directory / "pod-ready.yaml"

    @property
    def pod_complete(self) -> Path:
        return self.directory / "pod-complete.yaml"

    def present(self) -> bool:
        return self.pod_ready.is_file() and self.pod_complete.is_file()


def read_versions(path: Path = VERSIONS_FILE) -> Versions:
    """Parse the ``KEY=VALUE`` lines of ``versions.env`` (the same file ``build.sh`` sources)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise E2ESetupError(f"cannot read the binary versions from {path}: {exc}") from exc
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    try:
        return Versions(
            kubernetes=values["KUBERNETES_VERSION"],
            kwok=values["KWOK_VERSION"],
            traefik=values["TRAEFIK_VERSION"],
            gateway_api=values["GATEWAY_API_VERSION"],
            helm=values["HELM_VERSION"],
        )
    except KeyError as exc:
        raise E2ESetupError(f"{path} does not set {exc.args[0]}") from exc


def cache_dir() -> Path:
    return Path(os.environ.get("CANARY_E2E_CACHE") or Path.home() / ".cache" / "canary-e2e")


def _system_binary(name: str) -> Path:
    # build.sh accepts either one on PATH or the Debian location; so do we.
    found = shutil.which(name)
    return Path(found) if found else Path("/usr/bin") / name


def expected_binaries(cache: Path | None = None, versions: Versions | None = None) -> Binaries:
    """Where each binary is once ``build.sh`` has run, whether or not it is there now."""
    cache = cache or cache_dir()
    versions = versions or read_versions()
    kube = cache / f"kubernetes-{versions.kubernetes}"
    return Binaries(
        # Built beside the Kubernetes binaries, from the same module graph (see build.sh).
        etcd=kube / "etcd",
        kube_apiserver=kube / "kube-apiserver",
        kube_controller_manager=kube / "kube-controller-manager",
        kube_scheduler=kube / "kube-scheduler",
        kubectl=kube / "kubectl",
        kwok=cache / f"kwok-{versions.kwok}" / "kwok",
        prometheus=_system_binary("prometheus"),
        traefik=cache / f"traefik-{versions.traefik}" / "traefik",
        helm=cache / f"helm-{versions.helm}" / "helm",
    )


def _missing(binaries: Binaries) -> list[tuple[str, Path]]:
    missing = []
    for item in fields(binaries):
        path: Path = getattr(binaries, item.name)
        if not (path.is_file() and os.access(path, os.X_OK)):
            missing.append((item.name.replace("_", "-"), path))
    crds = binaries.traefik_crds
    if not crds.present():
        missing.append(("traefik-crds", crds.directory))
    stages = binaries.kwok_stages
    if not stages.present():
        missing.append(("kwok-stages", stages.directory))
    return missing


def binaries_missing(binaries: Binaries | None = None) -> list[str]:
    """Names (``kube-apiserver``, ``kwok``, ...) of the binaries that are not built or installed."""
    return [name for name, _ in _missing(binaries or expected_binaries())]


def find_binaries(cache: Path | None = None) -> Binaries:
    """The binaries, or an :class:`E2ESetupError` naming each one that is missing and where."""
    binaries = expected_binaries(cache)
    missing = _missing(binaries)
    if missing:
        raise E2ESetupError(
            "control-plane binaries missing: "
            + ", ".join(f"{name} ({path})" for name, path in missing)
            + f"; build them with `python -m e2e.cluster build` (runs {BUILD_SCRIPT})"
        )
    return binaries


def ensure_binaries() -> Binaries:
    """The binaries, running ``build.sh`` first if any is missing (its output goes to stderr)."""
    binaries = expected_binaries()
    if not _missing(binaries):
        return binaries
    return build()


def build() -> Binaries:
    """Run ``build.sh`` (a no-op for what is cached), streaming its output to our stderr."""
    # build.sh reports progress on stderr and prints only the cache directory on stdout, as its
    # last line; stdout is piped so we learn the directory, and echoed so nothing is hidden.
    try:
        proc = subprocess.Popen(
            ["bash", str(BUILD_SCRIPT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        raise E2ESetupError(f"could not run {BUILD_SCRIPT}: {exc}") from exc
    assert proc.stdout is not None
    last_line = ""
    for line in proc.stdout:
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.strip():
            last_line = line.strip()
    code = proc.wait()
    if code != 0:
        raise E2ESetupError(f"{BUILD_SCRIPT} failed with exit code {code} (its output is above)")
    cache = Path(last_line) if last_line else None
    return find_binaries(cache)
