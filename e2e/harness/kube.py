"""The few Kubernetes reads and writes the scenarios make, through the official client.

Scenarios act the way users do: they create and edit Deployments, ConfigMaps and Canaries and
annotate Canaries. They read the Canary's status, the route object and the Deployments to check
what the controller did. Nothing here writes anything the controller owns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

GROUP = "canary.dev"
VERSION = "v1alpha1"
PLURAL = "canaries"

T = TypeVar("T")


class ScenarioTimeout(AssertionError):
    """A condition a scenario waited for did not happen in time; the message says what was seen."""


def wait_for(
    read: Callable[[], T],
    accept: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Poll ``read()`` until ``accept`` takes its value; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            raise ScenarioTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {value!r}")
        time.sleep(interval)


def exists(read: Callable[[], object]) -> bool:
    """Whether ``read()`` finds its object (a 404 says no; other errors are raised)."""
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


@dataclass
class Kube:
    """Typed shortcuts over one ApiClient, scoped to one namespace."""

    api: client.ApiClient
    namespace: str

    # The client's generated annotations want model objects where it accepts plain dicts too;
    # scenarios write manifests as dicts, so these are typed loosely on purpose.
    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    # --- namespace -----------------------------------------------------------------------
    def create_namespace(self) -> None:
        self.core.create_namespace({"metadata": {"name": self.namespace, "labels": {"canary.dev/e2e": "true"}}})
        # Pods need the default ServiceAccount, which the controller-manager creates.
        wait_for(
            lambda: exists(lambda: self.core.read_namespaced_service_account("default", self.namespace)),
            bool,
            timeout=30,
            what=f"ServiceAccount default in {self.namespace}",
        )

    def delete_namespace(self) -> None:
        try:
            self.core.delete_namespace(self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise


    # --- workloads -----------------------------------------------------------------------
    def create(self, manifest: Mapping[str, Any]) -> None:
        kind = manifest["kind"]
        body = dict(manifest)
        if kind == "Deployment":
            self.apps.create_namespaced_deployment(self.namespace, body)
        elif kind == "DaemonSet":
            self.apps.create_namespaced_daemon_set(self.namespace, body)
        elif kind == "ConfigMap":
            self.core.create_namespaced_config_map(self.namespace, body)
        elif kind == "Service":
            self.core.create_namespaced_service(self.namespace, body)
        elif kind == "Canary":
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        elif kind == "IngressRoute":  # what a Flagger user writes beside a provider: traefik Canary
            group, version = manifest["apiVersion"].split("/")
            self.custom.create_namespaced_custom_object(group, version, self.namespace, "ingressroutes", body)
        else:
            raise ValueError(f"the scenarios do not create {kind} objects")

    def deployment(self, name: str) -> dict[str, Any]:
        obj = self.apps.read_namespaced_deployment(name, self.namespace)
        out: dict[str, Any] = client.ApiClient.sanitize_for_serialization(self.api, obj)  # type: ignore[no-untyped-call]
        return out

    def daemonset(self, name: str) -> dict[str, Any]:
        obj = self.apps.read_namespaced_daemon_set(name, self.namespace)
        out: dict[str, Any] = client.ApiClient.sanitize_for_serialization(self.api, obj)  # type: ignore[no-untyped-call]
        return out

    def patch_daemonset_template_annotations(self, name: str, annotations: Mapping[str, str]) -> None:
        body = {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}
        self.apps.patch_namespaced_daemon_set(name, self.namespace, body)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        found = self.core.list_namespaced_pod(self.namespace, label_selector=selector)
        out: list[dict[str, Any]] = client.ApiClient.sanitize_for_serialization(self.api, found)["items"]  # type: ignore[no-untyped-call]
        return out

    def patch_template_annotations(self, name: str, annotations: Mapping[str, str]) -> None:
        """Edit the pod template the way `kubectl apply` of a new manifest would: a new revision."""
        body = {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}
        self.apps.patch_namespaced_deployment(name, self.namespace, body)

    def set_configmap(self, name: str, data: Mapping[str, str]) -> None:
        self.core.patch_namespaced_config_map(name, self.namespace, {"data": dict(data)})

    def configmap_data(self, name: str) -> dict[str, str] | None:
        try:
            cm = self.core.read_namespaced_config_map(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(cm.data or {})

    # --- the Canary ----------------------------------------------------------------------
    def canary(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        return obj

    def status(self, name: str) -> dict[str, Any]:
        st: dict[str, Any] = self.canary(name).get("status") or {}
        return st

    def annotate_canary(self, name: str, annotations: Mapping[str, str | None]) -> None:
        body = {"metadata": {"annotations": dict(annotations)}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, body)

    def wait_for_phase(self, name: str, *phases: str, timeout: float) -> dict[str, Any]:
        return wait_for(
            lambda: self.status(name),
            lambda st: st.get("phase") in phases,
            timeout=timeout,
            what=f"Canary {self.namespace}/{name} to reach phase {' or '.join(phases)}",
        )

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        """The Canary's status condition of type ``kind`` while it is True; None otherwise."""
        for condition in self.status(name).get("conditions") or []:
            if condition.get("type") == kind and condition.get("status") == "True":
                return dict(condition)
        return None

    def events(self, name: str) -> list[dict[str, Any]]:
        """The Events recorded on the Canary, oldest first, as (reason, message) dicts."""
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=Canary"
        ).items
        items.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        return [{"reason": e.reason, "message": e.message, "type": e.type} for e in items]

    # --- routes --------------------------------------------------------------------------
    def custom_object(self, group: str, version: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(group, version, self.namespace, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj
