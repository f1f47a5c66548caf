"""A thin asyncio face over the synchronous ``kubernetes`` client.

Every call runs in a worker thread so the event loop (and with it the watch streams and the
other Canaries) never blocks, and every ``ApiException`` becomes one of our ``ApiError`` types.

Every write is fenced here, in one place: the worker thread asks the :class:`LeaseGuard` right
before sending, and bounds the request by the time the Lease is still proven held. A call is a
write by its verb (the generated client names every method after one), so a new write path
cannot forget the fence.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from canary.errors import ApiError, Conflict, NotFound
from canary.kube.fence import WRITE_GUARD, LeaseGuard

T = TypeVar("T")
#: The generated client would pick JSON Patch for every dict body; always say which patch we mean.
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
CANARY_GROUP, CANARY_VERSION, CANARY_PLURAL = "canary.dev", "v1alpha1", "canaries"
#: Holds a Canary with ``revertOnDeletion`` until traffic is handed back to its target.
REVERT_FINALIZER = "canary.dev/revert-on-deletion"
#: Method-name prefixes of the generated client that change the cluster.
WRITE_VERBS = ("create_", "replace_", "patch_", "delete_")
#: The longest a write may take; shorter when the Lease runs out sooner.
WRITE_TIMEOUT_SECONDS = 30.0


def is_write(fn: Callable[..., object]) -> bool:
    return getattr(fn, "__name__", "").startswith(WRITE_VERBS)


class KubeApi:
    def __init__(self, api_client: client.ApiClient, guard: LeaseGuard | None = None) -> None:
        self.api_client = api_client
        self.guard = guard or LeaseGuard.unbounded()
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.apis = client.ApisApi(api_client)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one client method in a worker thread; writes only while the Lease is held
        (:class:`~canary.kube.fence.NotLeading` otherwise, and nothing is sent)."""
        send = fenced(self.guard, fn) if is_write(fn) else fn
        try:
            return await asyncio.to_thread(send, *args, **kwargs)
        except ApiException as exc:
            raise _translate(exc) from exc

    def to_dict(self, obj: object) -> dict[str, Any]:
        """A client model (or a dict) as plain JSON-ready data."""
        return dict(self.api_client.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    async def get_custom(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        found = await self.call(self.custom.get_namespaced_custom_object, group, version, namespace, plural, name)
        return self.to_dict(found)

    async def get_cluster_custom(self, group: str, version: str, plural: str, name: str) -> dict[str, Any]:
        found = await self.call(self.custom.get_cluster_custom_object, group, version, plural, name)
        return self.to_dict(found)

    async def get_raw(self, path: str) -> Mapping[str, Any]:
        """GET an arbitrary API path (aggregated APIs such as the SMI Traffic Metrics API)."""
        def fetch() -> tuple[int, bytes]:
            method, url, headers, body, post = self.api_client.param_serialize(
                "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(method, url, headers, body, post)
            return int(response.status), bytes(response.read())  # type: ignore[no-untyped-call]

        status, payload = await self.call(fetch)
        if status >= 400:
            text = payload.decode(errors="replace")[:300]
            error_type = NotFound if status == 404 else ApiError
            raise error_type(f"GET {path}: {status}: {text}", status)
        return dict(json.loads(payload))

    async def served_versions(self, group: str) -> list[str]:
        groups = await self.call(self.apis.get_api_versions)
        for found in groups.groups or []:
            if found.name == group:
                return [v.version for v in found.versions or []]
        return []


def fenced(guard: LeaseGuard, fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` checked against ``guard`` at the moment it is sent: the worker pool may have kept
    it queued for a while, and the process may have been frozen in between.

    A guard set in :data:`~canary.kube.fence.WRITE_GUARD` (a sharded Canary's bucket) takes the
    place of ``guard``; it is read in the sending thread, whose context is the caller's."""

    def send(*args: Any, **kwargs: Any) -> T:
        checked = WRITE_GUARD.get() or guard
        with checked.sending(getattr(fn, "__name__", "a write")) as left:
            kwargs["_request_timeout"] = min(float(kwargs.get("_request_timeout") or WRITE_TIMEOUT_SECONDS), left)
            return fn(*args, **kwargs)

    return send


def _translate(exc: ApiException) -> ApiError:
    status = int(exc.status or 0)
    message = f"{exc.status} {exc.reason}: {_message(exc)}"
    if status == 404:
        return NotFound(message, status)
    if status == 409:
        return Conflict(message, status)
    return ApiError(message, status)


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", exc.body))
    except (ValueError, AttributeError):
        return str(exc.body)
