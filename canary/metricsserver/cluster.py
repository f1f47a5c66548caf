"""The Kubernetes API, read-only: credentials, raw GETs, and the authentication ConfigMap.

Everything runs the synchronous ``kubernetes`` client in a worker thread, and every failure
becomes :class:`KubeError` with the HTTP status (0: no answer), so the rest of the package never
sees the client's exception types.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from canary.errors import ApiError
from canary.metricsserver.auth import RequestHeaderConfig
from canary.metricsserver.config import (
    DEFAULT_EXTRA_HEADERS_PREFIXES,
    DEFAULT_GROUP_HEADERS,
    DEFAULT_USERNAME_HEADERS,
    ConfigError,
    StartupError,
)

AUTH_CONFIGMAP_NAMESPACE = "kube-system"
AUTH_CONFIGMAP_NAME = "extension-apiserver-authentication"
AUTH_CONFIGMAP = f"{AUTH_CONFIGMAP_NAMESPACE}/{AUTH_CONFIGMAP_NAME}"
#: Metadata only: the server needs names, and a Pod list with full objects is large.
METADATA_ACCEPT = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"


class KubeError(ApiError):
    """A GET against the Kubernetes API failed; ``status`` 0 means no answer."""


def load_api_client(kubeconfig: str | None) -> k8s.ApiClient:
    """An explicit kubeconfig wins; else in-cluster credentials in a Pod, else $KUBECONFIG."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration, persist_config=False)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration, persist_config=False)
    except (k8s_config.ConfigException, OSError) as exc:
        raise ConfigError(f"cannot configure access to the Kubernetes API "
                          f"({kubeconfig or 'in-cluster or $KUBECONFIG'}): {exc}") from exc
    return k8s.ApiClient(configuration)


class KubeReader:
    """GETs of arbitrary API paths, returning decoded JSON."""

    def __init__(self, api_client: k8s.ApiClient, *, timeout: timedelta = timedelta(seconds=5)) -> None:
        self._client = api_client
        self._timeout = timeout.total_seconds()

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    async def get(self, path: str, *, query: Sequence[tuple[str, str]] = (),
                  accept: str = "application/json") -> dict[str, Any]:
        return await asyncio.to_thread(self._get_blocking, path, list(query), accept)

    def _get_blocking(self, path: str, query: list[tuple[str, str]], accept: str) -> dict[str, Any]:
        try:
            method, url, headers, body, post = self._client.param_serialize(
                "GET", path, query_params=query, header_params={"Accept": accept}, auth_settings=["BearerToken"],
            )
            response = self._client.call_api(method, url, headers, body, post, _request_timeout=self._timeout)
            status, payload = int(response.status), bytes(response.read())  # type: ignore[no-untyped-call]
        except ApiException as exc:
            raise KubeError(f"GET {path}: {exc.status} {exc.reason}", int(exc.status or 0)) from exc
        except (urllib3.exceptions.HTTPError, OSError, ssl.SSLError) as exc:
            raise KubeError(f"GET {path}: the Kubernetes API did not answer: {exc}", 0) from exc
        if status >= 400:
            raise KubeError(f"GET {path}: {status}: {_message(payload)}", status)
        try:
            decoded = json.loads(payload)
        except ValueError as exc:
            raise KubeError(f"GET {path}: the answer is not JSON", status) from exc
        if not isinstance(decoded, dict):
            raise KubeError(f"GET {path}: the answer is not a JSON object", status)
        return decoded


def _message(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("message", ""))[:300]
    except (ValueError, AttributeError):
        return payload.decode(errors="replace")[:300]


# --- the authentication ConfigMap ---------------------------------------------------------------


async def read_requestheader_config(reader: KubeReader) -> RequestHeaderConfig:
    """The requestheader settings the kube-apiserver publishes in ``kube-system/extension-apiserver-authentication``.

    Needs ``get`` on that ConfigMap: the ``extension-apiserver-authentication-reader`` Role in
    kube-system grants it. Raises ConfigError with what to do when it cannot be used.
    """
    path = f"/api/v1/namespaces/{AUTH_CONFIGMAP_NAMESPACE}/configmaps/{AUTH_CONFIGMAP_NAME}"
    try:
        body = await reader.get(path)
    except KubeError as exc:
        if exc.status == 0:
            raise StartupError(f"cannot read ConfigMap {AUTH_CONFIGMAP}: {exc}") from exc
        hint = {
            403: "bind the Role extension-apiserver-authentication-reader in kube-system to this "
                 "server's ServiceAccount",
            404: "the kube-apiserver publishes it only when it runs with --requestheader-client-ca-file",
        }.get(exc.status, "or pass --requestheader-client-ca-file")
        raise ConfigError(f"cannot read ConfigMap {AUTH_CONFIGMAP}: {exc}; {hint}") from exc
    return requestheader_from_configmap(body.get("data") or {})


def requestheader_from_configmap(data: Mapping[str, Any]) -> RequestHeaderConfig:
    """Parse the ConfigMap's ``data`` (lists are JSON-encoded strings there). Pure."""
    ca = data.get("requestheader-client-ca-file")
    if not isinstance(ca, str) or "BEGIN CERTIFICATE" not in ca:
        raise ConfigError(f"ConfigMap {AUTH_CONFIGMAP} has no requestheader-client-ca-file: the kube-apiserver "
                          "runs without the aggregation layer's front proxy (--requestheader-client-ca-file); "
                          "pass --requestheader-client-ca-file to this server instead")

    def strings(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = data.get(key)
        if raw is None:
            return default
        try:
            decoded = json.loads(raw) if isinstance(raw, str) and raw else []
        except ValueError as exc:
            raise ConfigError(f"ConfigMap {AUTH_CONFIGMAP}: {key} is not a JSON list: {raw!r:.100}") from exc
        if not isinstance(decoded, list) or not all(isinstance(item, str) for item in decoded):
            raise ConfigError(f"ConfigMap {AUTH_CONFIGMAP}: {key} is not a JSON list of strings: {raw!r:.100}")
        return tuple(decoded)

    return RequestHeaderConfig(
        client_ca_pem=ca,
        allowed_names=strings("requestheader-allowed-names", ()),
        username_headers=strings("requestheader-username-headers", DEFAULT_USERNAME_HEADERS),
        group_headers=strings("requestheader-group-headers", DEFAULT_GROUP_HEADERS),
        extra_headers_prefixes=strings("requestheader-extra-headers-prefix", DEFAULT_EXTRA_HEADERS_PREFIXES),
        source=f"ConfigMap {AUTH_CONFIGMAP}",
    )
