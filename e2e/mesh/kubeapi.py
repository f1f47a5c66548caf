"""Raw JSON access to the API server: GET, watch streams and API discovery.

The watches need three things the typed ``kubernetes`` client APIs do not give: the same code
for core resources and custom resources of whichever version is served, the HTTP status of a
failed watch (410 means relist, 404 means the resource's API is gone), and a way to abort a
blocked read from another thread. So requests go through the client's ``ApiClient`` (which
keeps kubeconfig handling, TLS and auth) as raw paths, and the JSON is decoded here.

:class:`Transport` is the seam the unit tests replace with a scripted fake.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

# Parts of the kubernetes package have no annotations; these state what they are.
_load_kube_config: Callable[..., None] = k8s_config.load_kube_config

_CONNECT_TIMEOUT = 5.0
_READ_TIMEOUT = 30.0


class KubeError(Exception):
    """A request to the API server failed; the message names the path."""


class TransportError(KubeError):
    """The API server could not be reached or the connection broke."""


class ApiStatusError(KubeError):
    def __init__(self, path: str, status: int, message: str) -> None:
        super().__init__(f"{path}: HTTP {status}: {message}")
        self.path, self.status, self.message = path, status, message


class NotFound(ApiStatusError):
    """404: the resource, or its whole API group/version, is not served."""


class Gone(ApiStatusError):
    """410: the resourceVersion to watch from is too old; list again."""


def status_error(path: str, status: int, message: str) -> ApiStatusError:
    if status == 404:
        return NotFound(path, status, message)
    if status == 410:
        return Gone(path, status, message)
    return ApiStatusError(path, status, message)


class WatchStream(Protocol):
    def events(self) -> Iterator[dict[str, Any]]:
        """Decoded watch events until the server ends the stream."""
        ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Unblock a reader in another thread (shutdown)."""
        ...


class Transport(Protocol):
    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The JSON object at ``path``; raises :class:`ApiStatusError` or :class:`TransportError`."""
        ...

    def watch(self, path: str, params: Mapping[str, str], timeout: float) -> WatchStream:
        """An open watch on ``path`` (``watch=1`` is added); raises like :meth:`get`."""
        ...


def resource_path(group: str, version: str, plural: str) -> str:
    """The cluster-wide collection path of a resource (all namespaces)."""
    if group == "":
        return f"/api/{version}/{plural}"
    return f"/apis/{group}/{version}/{plural}"


@dataclass(frozen=True)
class GroupVersions:
    """What discovery says about an API group."""

    served: tuple[str, ...]
    preferred: str


def discover_group(transport: Transport, group: str) -> GroupVersions | None:
    """The versions of ``group`` the API server serves, or None when it serves none."""
    try:
        body = transport.get(f"/apis/{group}")
    except NotFound:
        return None
    versions = tuple(
        str(v["version"]) for v in body.get("versions") or () if isinstance(v, Mapping) and v.get("version")
    )
    if not versions:
        return None
    preferred = body.get("preferredVersion") or {}
    chosen = preferred.get("version") if isinstance(preferred, Mapping) else None
    return GroupVersions(served=versions, preferred=str(chosen) if chosen in versions else versions[0])


def load_configuration(kubeconfig: Path | None) -> Any:
    """A ``kubernetes.client.Configuration`` from a kubeconfig file (default: $KUBECONFIG)."""
    configuration = k8s_client.Configuration()
    try:
        _load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None, client_configuration=configuration
        )
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        raise KubeError(f"cannot load kubeconfig {kubeconfig or '(default)'}: {exc}") from exc
    return configuration


class ApiClientTransport:
    """A :class:`Transport` over one ``kubernetes.client.ApiClient`` (use one per thread)."""

    def __init__(self, configuration: Any) -> None:
        self._api = k8s_client.ApiClient(configuration)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        response = self._call(path, params or {}, (_CONNECT_TIMEOUT, _READ_TIMEOUT))
        try:
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(f"GET {path}: {exc}") from exc
        if response.status != 200:
            raise status_error(path, response.status, _status_message(data))
        try:
            body = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TransportError(f"GET {path}: the answer is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise TransportError(f"GET {path}: the answer is not a JSON object")
        return body

    def watch(self, path: str, params: Mapping[str, str], timeout: float) -> WatchStream:
        query = {**params, "watch": "1"}
        # The read timeout outlasts the server-side timeoutSeconds: a silent connection is broken.
        response = self._call(path, query, (_CONNECT_TIMEOUT, timeout + 15.0))
        if response.status != 200:
            try:
                data = response.read()
            except (urllib3.exceptions.HTTPError, OSError):
                data = b""
            raise status_error(path, response.status, _status_message(data))
        return _Urllib3WatchStream(path, response.response)

    def close(self) -> None:
        close: Callable[[], None] = self._api.close
        close()

    def _call(self, path: str, params: Mapping[str, str], timeout: tuple[float, float]) -> Any:
        request = self._api.param_serialize(
            "GET",
            path,
            query_params=list(params.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            return self._api.call_api(*request, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError, ApiException) as exc:
            raise TransportError(f"GET {path}: {exc}") from exc


class _Urllib3WatchStream:
    def __init__(self, path: str, response: Any) -> None:
        self._path = path
        self._response = response
        self._finished = False

    def events(self) -> Iterator[dict[str, Any]]:
        buffer = bytearray()
        try:
            for chunk in self._response.stream(amt=None, decode_content=False):
                buffer.extend(chunk)
                while (end := buffer.find(b"\n")) != -1:
                    line = bytes(buffer[:end]).strip()
                    del buffer[: end + 1]
                    if line:
                        yield self._decode(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            # ValueError: urllib3 reading from a socket that abort() shut down.
            raise TransportError(f"watch {self._path}: {exc}") from exc
        self._finished = True
        if buffer.strip():
            yield self._decode(bytes(buffer).strip())

    def _decode(self, line: bytes) -> dict[str, Any]:
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TransportError(f"watch {self._path}: undecodable event: {exc}") from exc
        if not isinstance(event, dict):
            raise TransportError(f"watch {self._path}: an event is not a JSON object")
        return event

    def close(self) -> None:
        try:
            # A stream left half-read must not go back to the pool: its connection would hand
            # the rest of this watch to the next request.
            if not self._finished:
                self._response.close()
            self._response.release_conn()
        except (urllib3.exceptions.HTTPError, OSError):
            pass

    def abort(self) -> None:
        connection = getattr(self._response, "connection", None)
        sock = getattr(connection, "sock", None)
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _status_message(data: bytes) -> str:
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return data[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return str(body["message"])
    return json.dumps(body)[:200]
