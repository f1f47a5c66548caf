"""The sample application and its Canary, as the manifests a developer would write.

The Deployment runs the ``pause`` image: on the local control plane kwok marks its Pods Ready
without running anything, and on a real cluster (``E2E_KUBECONFIG``) the image exists and runs.
What the "application" answers comes from its pod-template annotations, read by the simulated
mesh's backend servers, so shipping a faulty version is a Deployment edit, as in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
PORT = 8080

VERSION = "sim.canary.dev/version"
ERROR_RATE = "sim.canary.dev/error-rate"
LATENCY_MS = "sim.canary.dev/latency-ms"
#: kwok deletes a terminating Pod this long after the deletion began (its pod-delete stage).
KWOK_DELETE_DELAY = "pod-delete.stage.kwok.x-k8s.io/delay"


def behaviour(version: str, *, error_rate: float = 0.0, latency_ms: int = 0) -> dict[str, str]:
    """Pod-template annotations that make the simulated pods behave this way."""
    return {VERSION: version, ERROR_RATE: str(error_rate), LATENCY_MS: str(latency_ms)}


def deployment(
    name: str,
    namespace: str,
    *,
    annotations: Mapping[str, str],
    replicas: int = 2,
    configmap: str | None = None,
    drain_seconds: int = 0,
) -> dict[str, Any]:
    """The app's Deployment. With ``drain_seconds`` its Pods shut down gracefully, as a real
    server with a termination grace period does: a deleted Pod leaves its Service's endpoints at
    once but lives (and, on the pod network, keeps answering) ``drain_seconds`` longer, so a
    proxy that learns of the change a moment later still reaches it. Without, a deleted Pod is
    gone within a second, which is all the simulated mesh needs."""
    template_annotations = dict(annotations)
    if drain_seconds:
        template_annotations[KWOK_DELETE_DELAY] = f"{drain_seconds}s"
    container: dict[str, Any] = {
        "name": "app",
        "image": PAUSE_IMAGE,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
    }
    if configmap:
        container["envFrom"] = [{"configMapRef": {"name": configmap}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": template_annotations},
                # kwok deletes a Pod at a random moment between its delay and the end of the grace
                # period, so the grace period is the delay exactly.
                "spec": {"containers": [container], "terminationGracePeriodSeconds": drain_seconds},
            },
        },
    }


def daemonset(name: str, namespace: str, *, annotations: Mapping[str, str]) -> dict[str, Any]:
    """The same app as :func:`deployment`, one pod per Node (kwok's Nodes run them too)."""
    body = deployment(name, namespace, annotations=annotations)
    body["kind"] = "DaemonSet"
    del body["spec"]["replicas"]
    return body


def success_rate_check(minimum: float = 99.0, window: str = "10s") -> dict[str, Any]:
    return {"name": "request-success-rate", "thresholdRange": {"min": minimum}, "interval": window}


def latency_check(maximum_ms: float = 200.0, window: str = "10s") -> dict[str, Any]:
    return {"name": "request-duration", "thresholdRange": {"max": maximum_ms}, "interval": window}


def canary(
    name: str,
    namespace: str,
    *,
    provider: str | None = None,
    interval: str = "2s",
    threshold: int = 2,
    step_weight: int = 20,
    max_weight: int = 60,
    metrics: Sequence[Mapping[str, Any]] | None = None,
    webhooks: Sequence[Mapping[str, Any]] = (),
    no_data_policy: str = "hold",
    min_sample_size: int = 5,
    # At the 2 s interval used here, the default of 10 ticks is 20 s: shorter than scenarios that
    # hold without traffic while they wait for something else (an HPA, a deletion, a gate).
    # test_no_traffic sets it low where the limit itself is under test.
    consecutive_no_data_limit: int = 100,
    consecutive_error_limit: int | None = None,
    progress_deadline_seconds: int = 120,
    revert_on_deletion: bool = False,
    target_kind: str = "Deployment",
    autoscaler_ref: Mapping[str, Any] | None = None,
    judge: Mapping[str, Any] | None = None,
    service_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    analysis: dict[str, Any] = {
        "interval": interval,
        "threshold": threshold,
        "stepWeight": step_weight,
        "maxWeight": max_weight,
        "noDataPolicy": no_data_policy,
        "minSampleSize": min_sample_size,
        "consecutiveNoDataLimit": consecutive_no_data_limit,
        "metrics": [dict(m) for m in (metrics if metrics is not None else (success_rate_check(), latency_check()))],
    }
    if consecutive_error_limit is not None:
        analysis["consecutiveErrorLimit"] = consecutive_error_limit
    if webhooks:
        analysis["webhooks"] = [dict(w) for w in webhooks]
    if judge is not None:
        analysis["judge"] = dict(judge)
    spec: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": name},
        "progressDeadlineSeconds": progress_deadline_seconds,
        "service": {"port": PORT, "targetPort": "http", "portName": "http", **(service_options or {})},
        "analysis": analysis,
    }
    if provider:
        spec["provider"] = provider
    if revert_on_deletion:
        spec["revertOnDeletion"] = True
    if autoscaler_ref is not None:
        spec["autoscalerRef"] = dict(autoscaler_ref)
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
