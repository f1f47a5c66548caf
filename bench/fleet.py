"""A fleet of Canaries on the local control plane, and the controller process measured against it.

Shared by the benches that run a real controller at scale (``bench.lease_under_load``,
``bench.scale``): how many kwok Nodes N Canaries need, creating N Deployments with a Canary each,
counting the Canaries' phases, starting the controller from a checkout (``--source``, for a
before/after figure) and reading its resident memory and CPU time from ``/proc``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from kubernetes import client

from e2e.harness import app

REPO = Path(__file__).resolve().parent.parent
#: kwok's default capacity is 110 Pods per Node; 100 leaves room for the Pods of a release.
PODS_PER_NODE = 100
GROUP, VERSION, PLURAL = "canary.dev", "v1alpha1", "canaries"

CanaryBody = Callable[[str, str], dict[str, Any]]
"""(name, namespace) -> the Canary manifest for the app of that name."""


def nodes_for(pods: int) -> int:
    """kwok Nodes enough for ``pods`` Pods (three at least, as the scenarios have)."""
    return max(3, pods // PODS_PER_NODE + 1)


def app_name(index: int) -> str:
    return f"app-{index:04d}"


def create_workloads(api: client.ApiClient, namespace: str, count: int, canary: CanaryBody) -> list[str]:
    """The namespace, then ``count`` one-replica Deployments with a Canary each; their names."""
    # Plain dicts as bodies, as kubectl sends them.
    core: Any = client.CoreV1Api(api)
    apps: Any = client.AppsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": namespace}})
    names = [app_name(i) for i in range(count)]
    for name in names:
        apps.create_namespaced_deployment(namespace, app.deployment(name, namespace, annotations=app.behaviour("1"),
                                                                    replicas=1))
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, canary(name, namespace))
    return names


def canary_phases(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """Each Canary's ``status.phase`` by name ("none" before the controller wrote one)."""
    listed: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return {str(item["metadata"]["name"]): str((item.get("status") or {}).get("phase") or "none")
            for item in listed.get("items", [])}


def canary_weights(api: client.ApiClient, namespace: str) -> dict[str, int]:
    """Each Canary's ``status.canaryWeight`` by name (0 before the controller wrote one)."""
    listed: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return {str(item["metadata"]["name"]): int((item.get("status") or {}).get("canaryWeight") or 0)
            for item in listed.get("items", [])}


def analysis_times(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """Each Canary's ``status.lastAnalysisTime`` by name, for those that have one."""
    listed: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return {str(item["metadata"]["name"]): str(item["status"]["lastAnalysisTime"])
            for item in listed.get("items", []) if (item.get("status") or {}).get("lastAnalysisTime")}


def phase_counts(phases: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for phase in phases.values():
        counts[phase] = counts.get(phase, 0) + 1
    return dict(sorted(counts.items()))


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` now, in MiB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far, all its threads (``/proc/<pid>/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses; the fields after its closing
    # parenthesis start at field 3, so utime and stime (fields 14 and 15) are at 11 and 12.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_controller(source: Path, *, kubeconfig: Path, namespace: str, prometheus_url: str, metrics_port: int,
                     log: TextIO, extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """``python -m canary run`` from checkout ``source``, watching ``namespace`` and holding its
    Lease there. Run in ``source``: ``-m`` puts the working directory first on ``sys.path``
    (ahead of PYTHONPATH too), so that is what picks the ``canary`` package imported."""
    argv = [sys.executable, "-m", "canary", "run", "--kubeconfig", str(kubeconfig),
            "--namespace", namespace, "--lease-namespace", namespace,
            "--prometheus-address", prometheus_url, "--metrics-port", str(metrics_port), *extra]
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=source.resolve())


def stop_controller(controller: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not exited within 30 s."""
    controller.terminate()
    try:
        controller.wait(30)
    except subprocess.TimeoutExpired:
        controller.kill()
        controller.wait()
