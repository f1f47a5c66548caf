"""kopf's credentials, taken from the same kubeconfig the rest of the controller uses.

kopf's builtin login handlers live in its default registry and reload the kubeconfig from its
default location, so with our own registry (and ``--kubeconfig``) they would either be missing or
read another file. This handler hands kopf the already loaded client configuration instead, so
the watch streams and the API calls always authenticate as the same identity.
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes import client as k8s


def connection_info(config: k8s.Configuration, *, trust_env: bool = False) -> kopf.ConnectionInfo:
    """kopf's view of ``config``: server, CA, client certificate, or bearer token."""
    # get_api_key_with_prefix runs the client's refresh hook (exec plugins, token files), so a
    # re-login after a 401 picks up a fresh token. Since client v36 the token is stored under
    # BearerToken; older clients used authorization.
    header: str | None = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        username=config.username or None,
        password=config.password or None,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        trust_env=trust_env,
    )


def register_login(registry: kopf.OperatorRegistry, config: k8s.Configuration) -> None:
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(config)
