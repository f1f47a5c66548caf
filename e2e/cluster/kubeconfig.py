"""Kubeconfig files for the admin and for each component of the local control plane."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

from e2e.cluster.pki import KeyPair

CONTEXT_NAME = "canary-e2e"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_cert: Path,
    client: KeyPair,
    user: str,
    context: str = CONTEXT_NAME,
) -> Path:
    """Write a kubeconfig that authenticates with the client certificate ``client``.

    Certificates are embedded rather than referenced, so the file keeps working when copied
    elsewhere or read by a tool with another working directory.
    """
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # It holds a private key: readable by its owner only, from the moment it exists.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    return path
