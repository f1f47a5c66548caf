"""The Canary operations the commands need, behind a protocol so tests can fake them.

:class:`KubeCanaryClient` is the only implementation that talks to a cluster; it maps the
kubernetes package's exceptions to :mod:`canary.cli.errors` so commands never see them.
"""

from __future__ import annotations

import builtins
import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypedDict

import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from canary.cli.errors import CanaryNotFound, ClusterError

__all__ = ["GROUP", "PLURAL", "VERSION", "CanaryClient", "KubeCanaryClient", "WatchEvent", "connect"]

GROUP = "canary.dev"
VERSION = "v1alpha1"
PLURAL = "canaries"

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)


class WatchEvent(TypedDict):
    #: ADDED, MODIFIED, DELETED or BOOKMARK.
    type: str
    object: dict[str, Any]


class CanaryClient(Protocol):
    @property
    def default_namespace(self) -> str:
        """The namespace commands use without ``-n`` (the kubeconfig context's, as kubectl does)."""
        ...

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """The Canary; raises :class:`CanaryNotFound`."""
        ...

    def list(self, namespace: str | None) -> builtins.list[dict[str, Any]]:
        """Canaries in ``namespace``, or in every namespace for None."""
        ...

    def patch_annotations(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> dict[str, Any]:
        """JSON merge patch of ``metadata.annotations`` (None removes a key); returns the Canary."""
        ...

    def list_events(self, namespace: str, name: str, uid: str | None = None) -> builtins.list[dict[str, Any]]:
        """The Kubernetes Events about the Canary (of this ``uid`` only, when given), as the API
        server returns them (camelCase keys, annotations intact), in no particular order."""
        ...

    def watch(self, namespace: str | None, name: str | None, timeout: float) -> Iterator[WatchEvent]:
        """Events for one Canary (or all in scope), starting with the current state as ADDED.

        Ends after about ``timeout`` seconds even when nothing happens.
        """
        ...


class KubeCanaryClient:
    """:class:`CanaryClient` on ``CustomObjectsApi``."""

    def __init__(self, api: Any, default_namespace: str = "default", request_timeout: float = 30.0,
                 core: Any = None) -> None:
        self._api = api
        #: CoreV1Api, for the Events about a Canary.
        self._core = core
        self._default_namespace = default_namespace
        self._timeout = request_timeout

    @property
    def default_namespace(self) -> str:
        return self._default_namespace

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj = self._api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                         _request_timeout=self._timeout)
        except ApiException as exc:
            raise _api_error(exc, f"reading canary {namespace}/{name}", namespace, name) from exc
        except _NETWORK_ERRORS as exc:
            raise ClusterError(f"reading canary {namespace}/{name}: {exc}") from exc
        return dict(obj)

    def list(self, namespace: str | None) -> builtins.list[dict[str, Any]]:
        where = f"namespace {namespace}" if namespace else "all namespaces"
        try:
            if namespace is None:
                result = self._api.list_cluster_custom_object(GROUP, VERSION, PLURAL, _request_timeout=self._timeout)
            else:
                result = self._api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                                 _request_timeout=self._timeout)
        except ApiException as exc:
            raise _api_error(exc, f"listing canaries in {where}") from exc
        except _NETWORK_ERRORS as exc:
            raise ClusterError(f"listing canaries in {where}: {exc}") from exc
        return [dict(item) for item in result.get("items") or []]

    def patch_annotations(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> dict[str, Any]:
        body = {"metadata": {"annotations": dict(annotations)}}
        try:
            obj = self._api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body,
                # Merge patch, as `kubectl annotate` sends: it touches only these keys.
                _content_type="application/merge-patch+json",
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            raise _api_error(exc, f"annotating canary {namespace}/{name}", namespace, name) from exc
        except _NETWORK_ERRORS as exc:
            raise ClusterError(f"annotating canary {namespace}/{name}: {exc}") from exc
        return dict(obj)

    def list_events(self, namespace: str, name: str, uid: str | None = None) -> builtins.list[dict[str, Any]]:
        if self._core is None:
            raise ClusterError("this client was built without access to Events")
        selector = f"involvedObject.kind=Canary,involvedObject.name={name}"
        if uid:
            # A Canary deleted and created again under the same name is another history.
            selector += f",involvedObject.uid={uid}"
        doing = f"listing the events of canary {namespace}/{name}"
        try:
            # The raw JSON rather than the client's models: the report reads the Events as the
            # API server wrote them, annotations included, with no conversion of key names.
            response = self._core.list_namespaced_event(namespace, field_selector=selector, _preload_content=False,
                                                        _request_timeout=self._timeout)
            body = json.loads(response.data)
        except ApiException as exc:
            raise _api_error(exc, doing) from exc
        except _NETWORK_ERRORS as exc:
            raise ClusterError(f"{doing}: {exc}") from exc
        except ValueError as exc:
            raise ClusterError(f"{doing}: the answer is not JSON: {exc}") from exc
        return [dict(item) for item in body.get("items") or []]

    def watch(self, namespace: str | None, name: str | None, timeout: float) -> Iterator[WatchEvent]:
        kwargs: dict[str, Any] = {
            # Server-side: the API server ends the watch, so an idle Canary cannot hang us.
            "timeout_seconds": max(1, math.ceil(timeout)),
            # Client-side: a dead connection still ends, a little after the server would have.
            "_request_timeout": math.ceil(timeout) + self._timeout,
        }
        if name is not None:
            kwargs["field_selector"] = f"metadata.name={name}"
        args: tuple[str, ...]
        if namespace is None:
            func, args = self._api.list_cluster_custom_object, (GROUP, VERSION, PLURAL)
        else:
            func, args = self._api.list_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL)
        watcher = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        what = f"watching canary {namespace or '*'}/{name or '*'}"
        try:
            for event in watcher.stream(func, *args, **kwargs):  # type: ignore[no-untyped-call]
                obj = event.get("raw_object") or event.get("object")
                if isinstance(obj, dict):
                    yield WatchEvent(type=str(event.get("type", "")), object=obj)
        except ApiException as exc:
            raise _api_error(exc, what) from exc
        except _NETWORK_ERRORS as exc:
            raise ClusterError(f"{what}: {exc}") from exc
        finally:
            watcher.stop()  # type: ignore[no-untyped-call]


def _api_error(exc: ApiException, doing: str, namespace: str = "", name: str = "") -> ClusterError | CanaryNotFound:
    if exc.status == 404 and name:
        return CanaryNotFound(namespace, name)
    if exc.status == 404:
        return ClusterError(f"{doing}: the {PLURAL}.{GROUP} resource is not installed (is the CRD applied?)")
    if exc.status in (401, 403):
        return ClusterError(f"{doing}: not allowed ({exc.status} {exc.reason})")
    return ClusterError(f"{doing}: {exc.status} {exc.reason}")


def connect(kubeconfig: str | None = None, context: str | None = None) -> KubeCanaryClient:
    """A client from a kubeconfig (the flag, ``$KUBECONFIG`` or ``~/.kube/config``) or, with none
    of those, from the Pod's service account."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig or context or _kubeconfig_present():
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration, persist_config=False,
            )
            namespace = _context_namespace(kubeconfig, context)
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            namespace = _service_account_namespace()
    except k8s_config.ConfigException as exc:
        raise ClusterError(f"cannot configure access to the cluster: {exc}") from exc
    api_client = k8s.ApiClient(configuration)
    return KubeCanaryClient(k8s.CustomObjectsApi(api_client), default_namespace=namespace,
                            core=k8s.CoreV1Api(api_client))


def _kubeconfig_present() -> bool:
    return bool(os.environ.get("KUBECONFIG")) or Path("~/.kube/config").expanduser().exists()


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts or [] if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def _service_account_namespace() -> str:
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"
