"""The local Kubernetes control plane of the e2e tests and the demo (``python -m e2e.cluster``)."""

from e2e.cluster.binaries import Binaries, binaries_missing, build, ensure_binaries, find_binaries
from e2e.cluster.control_plane import (
    ClusterState,
    ControlPlane,
    ProcessRecord,
    install_manifests,
    load_manifests,
    read_state,
)
from e2e.cluster.kubeconfig import write_kubeconfig
from e2e.cluster.pki import ClusterPKI, KeyPair, generate_pki
from e2e.processes import E2ESetupError

__all__ = [
    "Binaries",
    "ClusterPKI",
    "ClusterState",
    "ControlPlane",
    "E2ESetupError",
    "KeyPair",
    "ProcessRecord",
    "binaries_missing",
    "build",
    "ensure_binaries",
    "find_binaries",
    "generate_pki",
    "install_manifests",
    "load_manifests",
    "read_state",
    "write_kubeconfig",
]
